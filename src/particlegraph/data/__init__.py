"""Data layer: column contracts, file formats, torch datasets."""
