"""Stand-ins for what cannot run here: the CMMS (with its SMS sink and SMSC) and PortaBilling."""
