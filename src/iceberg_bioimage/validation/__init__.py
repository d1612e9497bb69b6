"""The microscopy join contract: read profile tables, check and canonicalise their keys."""
