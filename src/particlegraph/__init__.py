"""particlegraph: collider events as graphs, GNNs trained on them, and explanations of what they learned."""

from __future__ import annotations

__version__ = "0.1.0"
