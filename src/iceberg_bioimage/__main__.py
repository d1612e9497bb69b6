"""``python -m iceberg_bioimage`` runs the CLI."""

from iceberg_bioimage.cli import main

main()
