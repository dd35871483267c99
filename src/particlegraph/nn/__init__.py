"""Neural-network layers (PyG MessagePassing conventions)."""
