"""The results layer, below both harnesses and the sweep engine: run directories (files, atomic
JSON, weights-only checkpoints, the metrics reader), the per-run report (tables and learning
curves of supervised and RL runs) and the statistics over seeds (rliable).

- :mod:`agents.results.runs`: :class:`RunDir`, ``read_json`` / ``write_json``, checkpoints.
- :mod:`agents.results.report`: ``memory-bench report RUN_DIR...``.
- :mod:`agents.results.stats`: IQM, bootstrap intervals, probability of improvement, ranks.
"""
