"""`python -m simulators.cmms`: run the CMMS simulator until stopped (SIGINT or SIGTERM)."""

import logging.config

import uvicorn

from simulators.cmms.app import create_app
from simulators.cmms.logs import log_config
from simulators.cmms.settings import get_settings


def main() -> None:
    """Serve the simulator on `CMMS_SIM_HOST:CMMS_SIM_PORT`."""
    settings = get_settings()
    logging.config.dictConfig(log_config())
    # Where and what, never the token or the SMS password.
    logging.getLogger("simulators.cmms").info(
        "CMMS simulator on http://%s:%d, state %s, profiles %s",
        settings.cmms_sim_host,
        settings.cmms_sim_port,
        settings.cmms_sim_state,
        ", ".join(sorted(settings.profiles)),
    )
    uvicorn.run(
        create_app(settings),
        host=settings.cmms_sim_host,
        port=settings.cmms_sim_port,
        log_config=log_config(),
        # In-flight calls may be sleeping in a latency fault; don't let them hold a restart up.
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
