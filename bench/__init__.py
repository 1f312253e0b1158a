"""Benchmarks: `python -m bench [--smoke] [name ...]` runs them and writes BENCHMARKS.md."""
