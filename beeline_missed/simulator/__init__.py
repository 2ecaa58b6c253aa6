"""Stand-ins for what this machine cannot reach (the PBX, 1C) and the demo shop."""
