"""The read-only HTTP API over the DuckDB serving layer (`velib serve`, and the dashboard's data)."""
