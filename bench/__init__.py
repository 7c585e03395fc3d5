"""Benchmark harness for Scopekeeper's core loop: synthetic fleets, a naive baseline, a runner.

``python -m bench.generate --scale typical`` writes a fleet to ``bench/data/<scale>/``;
``python -m bench.run --scale typical`` measures the targets of docs/performance.md in one run.
"""
