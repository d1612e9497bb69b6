"""formats/file_set"""
