"""The system as it is run and shipped: walk-throughs, browser, Kannel, make run, Compose, packaging."""
