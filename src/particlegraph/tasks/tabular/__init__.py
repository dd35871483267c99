"""Tabular task: signal/background MLP with gradient and Taylor analysis."""
