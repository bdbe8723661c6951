"""Benchmarks run beside tools/bench.py (the PyTorch reference)."""
