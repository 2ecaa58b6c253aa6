"""Casework over the register: the card service, calling back together, the journal."""
