"""PortaBilling beside this service (BILLING_SOURCE=portabilling): the client of its JSON API and ESPF
status API. See `clients.portabilling.client`."""
