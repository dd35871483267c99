"""Command-line interface: parses arguments into configs and calls library functions."""
