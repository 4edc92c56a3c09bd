"""`python -m simulators.portabilling`: run the PortaBilling simulator until stopped (SIGINT or SIGTERM)."""

import logging

from simulators.common import serve, start_logging
from simulators.portabilling.app import create_app
from simulators.portabilling.settings import get_settings


def main() -> None:
    """Serve the simulator on `PORTABILLING_SIM_HOST:PORTABILLING_SIM_PORT`."""
    settings = get_settings()
    # No URL carries a secret here: uvicorn's access log as it is.
    config = start_logging("simulators.portabilling")
    # Where and what, never a password.
    logging.getLogger("simulators.portabilling").info(
        "PortaBilling simulator on http://%s:%d (state in memory), events to %s as %r",
        settings.portabilling_sim_host,
        settings.portabilling_sim_port,
        settings.portabilling_sim_event_url,
        settings.espf_username,
    )
    serve(create_app(settings), settings.portabilling_sim_host, settings.portabilling_sim_port, config)


if __name__ == "__main__":
    main()
