"""The self-contained HTML plate report (SPEC §12): thumbnails, heatmaps, cells."""
