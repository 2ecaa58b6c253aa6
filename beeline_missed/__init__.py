"""beeline-missed: a register of missed client calls for the Beeline Cloud PBX."""

__version__ = "0.1.0"
