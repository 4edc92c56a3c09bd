"""Pure logic: no process, no network, no database."""
