"""Explainability: LRP, gradients, Taylor coefficients, faithfulness checks."""
