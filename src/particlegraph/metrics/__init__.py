"""Physics and ML metrics (definitions as in DESIGN.md)."""
