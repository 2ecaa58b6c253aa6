"""Period reports: `spec.py` (what is asked: period, fields, filters), `engine.py` (the
read-only SQL, groups, measures), `formats.py` (table, csv, json, xlsx, html)."""
