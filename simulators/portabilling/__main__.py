"""`python -m simulators.portabilling`: run the PortaBilling simulator until stopped (SIGINT or SIGTERM)."""

import copy
import logging.config
from typing import Any

import uvicorn
import uvicorn.config

from simulators.portabilling.app import create_app
from simulators.portabilling.settings import get_settings


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with the simulator's own lines beside its access log (no URL carries a secret)."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["simulators.portabilling"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def main() -> None:
    """Serve the simulator on `PORTABILLING_SIM_HOST:PORTABILLING_SIM_PORT`."""
    settings = get_settings()
    logging.config.dictConfig(log_config())
    # Where and what, never a password.
    logging.getLogger("simulators.portabilling").info(
        "PortaBilling simulator on http://%s:%d (state in memory), events to %s as %r",
        settings.portabilling_sim_host,
        settings.portabilling_sim_port,
        settings.portabilling_sim_event_url,
        settings.espf_username,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.portabilling_sim_host,
        port=settings.portabilling_sim_port,
        log_config=log_config(),
        # Deliveries may be sleeping in a backoff; don't let them hold a restart up.
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
