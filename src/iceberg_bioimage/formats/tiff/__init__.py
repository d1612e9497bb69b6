"""formats/tiff"""
