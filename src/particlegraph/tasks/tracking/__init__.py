"""Tracking: group the hits of a TrackML-like silicon tracker into particle tracks (metric learning + edge-weighted GNN + DBSCAN)."""
