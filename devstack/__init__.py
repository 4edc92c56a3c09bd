"""`make run`: the whole system on one machine (Temporal dev server, simulator, worker, API)."""
