"""Anomaly detection: graph autoencoders on the 40 leading PF candidates of an event.

Modules: ``samples`` (generate zerobias / jetht / BSM-like samples as PF-candidate Parquet),
``graphs`` (top-40 selection, features, preprocessing, eta-phi kNN edges), ``formats`` (the
exercise's ``.pt`` lists of PyG ``Data``), ``models`` (gae-seed, gae, node-ae), ``scores``
(vectorised per-graph anomaly scores), ``train``, ``evaluate``, ``explain``, ``demo``, ``cli``.
"""
