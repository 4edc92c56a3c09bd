"""Clients of the systems this service talks to: the CMMS, PortaBilling, the SMS gateway."""
