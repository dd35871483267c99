"""Figures: functions take keyword-only ax=None and return their artists."""
