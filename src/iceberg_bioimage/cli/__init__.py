"""The ``iceberg-bioimage`` command line (click + rich): the only place that prints."""

from __future__ import annotations

import click

from iceberg_bioimage._version import __version__
from iceberg_bioimage.cli import (
    catalog_commands,
    crop_commands,
    cytomining_commands,
    report_commands,
    scan_commands,
)

#: Commands shown in ``--help``, grouped by task, in this order.
SECTIONS: dict[str, tuple[click.Command, ...]] = {
    "Get started": (scan_commands.sample_data,),
    "Read stores (metadata only)": (scan_commands.scan, scan_commands.summarize),
    "Iceberg catalog": (
        catalog_commands.register,
        catalog_commands.ingest,
        catalog_commands.publish_chunks,
        catalog_commands.tables,
        catalog_commands.deregister,
        catalog_commands.maintain,
    ),
    "Profiles and joins": (
        cytomining_commands.validate_contract,
        cytomining_commands.join_profiles,
    ),
    "Cytomining warehouse": (
        cytomining_commands.export_cytomining,
        cytomining_commands.export_cytomining_catalog,
        cytomining_commands.export_cytomining_profiles,
        cytomining_commands.validate_warehouse,
    ),
    "Single-cell crops": (crop_commands.export_crops,),
    "Seeing the plate": (report_commands.report,),
}

EPILOG = (
    "Every command takes --json (machine output on stdout), --quiet and --debug. "
    'Shell completion: eval "$(_ICEBERG_BIOIMAGE_COMPLETE=bash_source iceberg-bioimage)" '
    "(zsh_source / fish_source for zsh and fish)."
)


class TaskGroup(click.Group):
    """A group whose ``--help`` lists commands under task headings."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write one definition list per section."""
        for title, commands in SECTIONS.items():
            rows = [(c.name or "", c.get_short_help_str(limit=200)) for c in commands]
            with formatter.section(title):
                formatter.write_dl(rows)


@click.group(
    cls=TaskGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EPILOG,
)
@click.version_option(__version__, "--version", prog_name="iceberg-bioimage")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notes.")
@click.option(
    "--verbose", "-v", is_flag=True, help="Log what the libraries do (e.g. commit retries)."
)
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool, verbose: bool) -> None:
    """Catalog OME-Zarr / OME-TIFF metadata with Apache Iceberg and export
    Cytomining-compatible Parquet warehouses."""
    ctx.meta["iceberg_bioimage.debug"] = debug
    ctx.meta["iceberg_bioimage.quiet"] = quiet
    _route_library_logs(verbose)


def _route_library_logs(verbose: bool) -> None:
    """Library log records (pyiceberg's "Commit failed ..., retrying") go to the log.

    Without ``--verbose`` they are dropped instead of reaching stderr through
    Python's last-resort handler: a retried commit is routine, not a warning
    for the user. ``--verbose`` shows them, timestamped, on stderr.
    """
    import logging

    if verbose:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        return
    for name in ("pyiceberg", "tifffile"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


for _commands in SECTIONS.values():
    for _command in _commands:
        main.add_command(_command)
