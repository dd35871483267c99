"""Task models: MLPF, FCN baseline, tabular classifier."""
