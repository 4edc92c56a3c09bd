"""`python -m simulators.cmms`: run the CMMS simulator until stopped (SIGINT or SIGTERM)."""

import logging

from simulators.cmms.app import create_app
from simulators.cmms.logs import RedactSecrets
from simulators.cmms.settings import get_settings
from simulators.common import serve, start_logging


def main() -> None:
    """Serve the simulator on `CMMS_SIM_HOST:CMMS_SIM_PORT`."""
    settings = get_settings()
    config = start_logging("simulators.cmms", RedactSecrets)
    # Where and what, never the token or the SMS password.
    logging.getLogger("simulators.cmms").info(
        "CMMS simulator on http://%s:%d, state %s, profiles %s",
        settings.cmms_sim_host,
        settings.cmms_sim_port,
        settings.cmms_sim_state,
        ", ".join(sorted(settings.profiles)),
    )
    serve(create_app(settings), settings.cmms_sim_host, settings.cmms_sim_port, config)


if __name__ == "__main__":
    main()
