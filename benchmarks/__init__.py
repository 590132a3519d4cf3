"""Benchmarks of discovery, opening, the drain and the command line.

``python benchmarks/run.py`` generates installed environments of realistic
shape, times every case in fresh processes interleaved with its baseline, and
writes the table to ``docs/_generated/benchmarks.md`` with the raw figures in
``docs/_generated/benchmarks.json``.
"""
