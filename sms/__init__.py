"""Sending SMS: an adapter for Kannel's `sendsms` HTTP interface (no Temporal here)."""
