"""velib_assets: Vélib' Métropole feeds to trustworthy history and analytics with Dagster."""
