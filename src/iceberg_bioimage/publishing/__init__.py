"""Sinks: canonical Arrow tables and the stores they are written to."""
