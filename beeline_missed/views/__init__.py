"""How rows are shown: JSON for scripts, tables and text for people, the live list."""
