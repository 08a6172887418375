"""Benchmarks: every figure is a ratio against a baseline measured in the same run.

``python -m bench.run_all`` runs them all and rewrites ``bench/RESULTS.md``; each module
(``bench.api_submit``, ``bench.round_trip``, ``bench.style_transfer``) also runs alone.
"""
