"""Single-cell crops read through the chunk index (SPEC §10).

``boxes`` turns profile columns into pixel boxes, ``plan`` finds the chunks they
touch, ``fetch`` reads those chunks (counted), ``decode`` decodes them with zarr or
tifffile, ``reader`` assembles and cuts, ``run`` ties it to profile tables.
"""
