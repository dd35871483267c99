"""End-to-end workflows that chain library pieces: each module is one CLI action callable from
Python with the same name (e.g. :func:`particlegraph.workflows.mlpf_evaluate.evaluate`)."""
