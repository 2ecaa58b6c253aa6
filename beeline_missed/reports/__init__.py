"""Period reports: the spec of fields, the engine (read-only SQL), the formats."""
