"""The rules: small pure modules the CLI, the daemon and the panel all call.

Detection, the card, claims and click-to-call, auto-close, hours, deadlines, the catch-up
from the PBX statistics and escalation: each takes the clock as a parameter.
"""
