"""Activities: the I/O steps (billing database, CMMS, SMS) that workflows orchestrate."""
