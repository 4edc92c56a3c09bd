"""The codec server: decodes (and encodes) Temporal payloads for the Temporal UI and CLI, for operators
who prove they may see them. `python -m codec_server` serves it on CODEC_SERVER_HOST:CODEC_SERVER_PORT."""
