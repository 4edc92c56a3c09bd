"""Plain pydantic models that cross a process boundary: Temporal payloads and the CMMS wire format."""
