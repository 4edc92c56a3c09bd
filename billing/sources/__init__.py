"""Billing sources: where the desired state of an account is read, and its provisioning outcome kept."""
