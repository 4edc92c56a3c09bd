"""The HTTP front: validates, reads billing, and starts, signals or updates workflows."""
