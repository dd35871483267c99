"""Layer-wise relevance propagation through message passing, sparse and linear in N.

Entry point: :func:`explain_event`; :func:`explain_edges` for models with edge states
(interaction networks), whose nodes and edges become one element set. Rules: :class:`Epsilon` (default), :class:`Gamma`,
:class:`ZPlus`, chosen per layer by a :class:`Composite`. Result: :class:`SparseRelevance`.
"""

from __future__ import annotations

from particlegraph.explain.lrp.checks import (
    conservation_summary,
    layer_balance,
    lrp0_gradient_error,
)
from particlegraph.explain.lrp.edge_elements import EdgeLayout, EdgeRelevance, explain_edges
from particlegraph.explain.lrp.explain import explain_event, explain_outputs
from particlegraph.explain.lrp.fold import fold_linear_bn, folded_batchnorm
from particlegraph.explain.lrp.models import trace_gravnet, trace_message_passing, trace_model
from particlegraph.explain.lrp.output import OutputNames, OutputSpec, parse_output
from particlegraph.explain.lrp.program import Program, Tracer, aggregation_weights
from particlegraph.explain.lrp.rules import Composite, Epsilon, Gamma, Rule, ZPlus, rule_from_name
from particlegraph.explain.lrp.sparse import MultiRelevance, SparseRelevance

__all__ = [
    "Composite",
    "EdgeLayout",
    "EdgeRelevance",
    "Epsilon",
    "Gamma",
    "MultiRelevance",
    "OutputNames",
    "OutputSpec",
    "Program",
    "Rule",
    "SparseRelevance",
    "Tracer",
    "ZPlus",
    "aggregation_weights",
    "conservation_summary",
    "explain_edges",
    "explain_event",
    "explain_outputs",
    "fold_linear_bn",
    "folded_batchnorm",
    "layer_balance",
    "lrp0_gradient_error",
    "parse_output",
    "rule_from_name",
    "trace_gravnet",
    "trace_message_passing",
    "trace_model",
]
