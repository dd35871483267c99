"""Storage shared by every task: Parquet shards of ragged per-event arrays, settings inside."""
