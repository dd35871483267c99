"""Task packages: one per physics task (mlpf, tabular, tracking, anomaly), each built on the engine."""
