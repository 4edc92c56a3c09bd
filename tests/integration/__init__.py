"""Real parts: the Temporal dev server, the simulator processes over HTTP, SQLite and PostgreSQL."""
