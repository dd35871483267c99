"""Layer-wise relevance propagation through message passing, sparse and linear in N."""
