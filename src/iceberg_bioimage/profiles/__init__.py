"""Profiles: reading CellProfiler-family outputs, keys and the join to images."""
