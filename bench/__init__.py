"""Benchmarks that print ratios against a bare endpoint measured in the same run (not tests)."""
