"""Feed clients and parsers: everything that knows the shape of Vélib' data, and nothing about Dagster."""
