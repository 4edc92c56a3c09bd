"""Helpers shared by the tests: free ports, a real CMMS simulator process."""
