"""Benchmarks: synthetic minute-cadence history, and the pipeline measured against pandas and DuckDB SQL.

`python -m benchmarks.run --days N` generates the history (once, cached), runs the three
implementations each in its own child process, checks they agree and writes `results/latest.json`.
"""
