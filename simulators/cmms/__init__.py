"""A stand-in for the AudioCodes CMMS (provisioning API, device side) plus a Kannel-compatible SMS sink.

Run it as its own process: `python -m simulators.cmms`. See `simulators.cmms.app.create_app` for the pieces.
"""
