"""formats/zarr"""
