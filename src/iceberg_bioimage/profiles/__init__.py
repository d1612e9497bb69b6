"""The profile side: readers of profile sources, the join contract, keys and the join."""
