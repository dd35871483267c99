"""HTML report assembly."""
