"""Integrations with external engines and services (catalogs, DuckDB, OME-Arrow)."""
