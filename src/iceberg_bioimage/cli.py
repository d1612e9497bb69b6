"""The ``iceberg-bioimage`` command line (click + rich). The only module that prints."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import pyarrow as pa
from pyiceberg.catalog import Catalog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iceberg_bioimage import api
from iceberg_bioimage._version import __version__
from iceberg_bioimage.exceptions import IcebergBioimageError
from iceberg_bioimage.integrations.catalog import resolve_catalog
from iceberg_bioimage.models import DatasetSummary, ScanResult

F = TypeVar("F", bound=Callable[..., Any])

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        stderr.print_exception()
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def command_options(func: F) -> F:
    """Give a command the shared ``--json`` and ``--debug`` flags and error handling."""

    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
    @click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
    @click.pass_context
    @functools.wraps(func)
    def wrapper(ctx: click.Context, *args: Any, debug: bool, **kwargs: Any) -> Any:
        debug = debug or bool(ctx.obj and ctx.obj.get("debug"))
        try:
            return func(*args, **kwargs)
        except IcebergBioimageError as error:
            _fail(str(error), 2, debug)
        except (FileExistsError, PermissionError) as error:
            _fail(f"{error.filename}: {error.strerror or error}", 2, debug)
        except Exception as error:
            _fail(
                f"unexpected {type(error).__name__}: {error} (rerun with --debug for a traceback)",
                1,
                debug,
            )

    return wrapper  # type: ignore[return-value]


def emit_json(payload: Any) -> None:
    """Write JSON to stdout, nothing else."""
    click.echo(json.dumps(payload, indent=2, default=str))


def print_warnings(warnings: tuple[str, ...] | list[str]) -> None:
    """Show scan warnings on stderr."""
    for warning in warnings:
        stderr.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on stderr when it is a terminal; silent when piped."""
    if stderr.is_terminal:
        with stderr.status(message):
            yield
    else:
        yield


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="iceberg-bioimage")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Catalog OME-Zarr / OME-TIFF metadata with Apache Iceberg and export
    Cytomining-compatible Parquet warehouses."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape)


def _scan_table(result: ScanResult) -> Table:
    table = Table(
        title=f"{result.dataset_id} · {result.storage_variant} · {result.image_count} images · "
        f"{result.array_count} arrays · {result.chunk_count:,} chunks",
        title_justify="left",
        box=None,
        header_style="bold",
    )
    for name in (
        "image_id",
        "levels",
        "shape (level 0)",
        "axes",
        "dtype",
        "channels",
        "chunks",
    ):
        table.add_column(name, overflow="fold")
    per_image: dict[str, list[Any]] = {}
    for asset in result.image_assets:
        per_image.setdefault(asset.image_id, []).append(asset)
    for image_id, assets in per_image.items():
        first = min(assets, key=lambda a: a.multiscale_level)
        table.add_row(
            image_id,
            str(len(assets)),
            _shape(first.shape),
            first.axes or "",
            first.dtype,
            ", ".join(first.channel_names or ()),
            f"{sum(a.chunk_count for a in assets):,}",
        )
    return table


@main.command()
@click.argument("uri")
@click.option("--dataset-id", help="Dataset id (default: the store name minus its suffix).")
@click.option("--stat-chunks", is_flag=True, help="List stored chunks: sizes and absent chunks.")
@click.option(
    "--read-shard-index",
    is_flag=True,
    help="Read shard indexes for inner chunk byte ranges.",
)
@command_options
def scan(
    uri: str,
    dataset_id: str | None,
    stat_chunks: bool,
    read_shard_index: bool,
    as_json: bool,
) -> None:
    """Scan a Zarr store or TIFF file and list its images (metadata only)."""
    with working(f"Scanning {uri}"):
        result = api.scan_store(
            uri,
            dataset_id=dataset_id,
            stat_chunks=stat_chunks,
            read_shard_index=read_shard_index,
        )
    print_warnings(result.warnings)
    if as_json:
        emit_json(result.to_dict())
    else:
        stdout.print(_scan_table(result))


def _plate_map(summary: DatasetSummary) -> Table | None:
    rows, columns, cells = summary.plate_grid()
    if not rows:
        return None
    title = f"plate {', '.join(summary.plate_ids)} · fields per well"
    table = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    table.add_column("")
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row, *[str(cells[(row, c)]) if (row, c) in cells else "·" for c in columns])
    return table


def _summary_table(summary: DatasetSummary) -> Table:
    table = Table(title=f"{summary.dataset_id}", title_justify="left", box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    facts = [
        ("uri", summary.uri),
        ("format", f"{summary.format} ({summary.storage_variant})"),
        ("images", f"{summary.image_count:,}"),
        ("arrays", f"{summary.array_count:,} ({summary.multiscale_levels} levels)"),
        ("chunks", f"{summary.chunk_count:,}"),
        ("size", _format_bytes(summary.nbytes) + " uncompressed"),
        (
            "shapes",
            "; ".join(_shape(s) for s in summary.shapes[:6])
            + (" …" if len(summary.shapes) > 6 else ""),
        ),
        ("dtypes", ", ".join(summary.dtypes)),
        ("axes", ", ".join(summary.axes) or "—"),
        ("channels", ", ".join(summary.channel_names) or "—"),
    ]
    if summary.plate_ids:
        facts.append(("plate", ", ".join(summary.plate_ids)))
        facts.append(("wells", f"{summary.well_count} with {len(summary.site_ids)} field ids"))
    for name, value in facts:
        table.add_row(name, value)
    return table


@main.command()
@click.argument("uri")
@click.option("--dataset-id", help="Dataset id (default: the store name minus its suffix).")
@command_options
def summarize(uri: str, dataset_id: str | None, as_json: bool) -> None:
    """Summarise a store: counts, shapes, channels and, for a plate, a plate map."""
    with working(f"Scanning {uri}"):
        summary = api.summarize_store(uri, dataset_id=dataset_id)
    print_warnings(summary.warnings)
    if as_json:
        emit_json(summary.to_dict())
        return
    stdout.print(_summary_table(summary))
    plate_map = _plate_map(summary)
    if plate_map is not None:
        stdout.print()
        stdout.print(plate_map)


@main.command("sample-data")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace sample files that already exist.")
@command_options
def sample_data(directory: str, overwrite: bool, as_json: bool) -> None:
    """Write a small OME-Zarr plate, OME-NGFF 0.5 image, OME-TIFF and profiles."""
    from iceberg_bioimage.sample_data import write_sample_data

    written = write_sample_data(directory, overwrite=overwrite)
    if as_json:
        emit_json(written.to_dict())
        return
    table = Table(
        title=f"sample data in {written.directory}",
        title_justify="left",
        box=None,
        show_header=False,
    )
    table.add_column(style="bold")
    table.add_column()
    for name, path in (
        ("HCS plate (OME-NGFF 0.4)", written.plate),
        ("image (OME-NGFF 0.5)", written.image),
        ("pyramidal OME-TIFF", written.ome_tiff),
        ("profiles (CellProfiler)", written.profiles),
    ):
        table.add_row(name, str(path))
    stdout.print(table)
    stdout.print(f"\nnext: iceberg-bioimage summarize {written.plate}")


# -- Iceberg control plane ----------------------------------------------------

catalog_option = click.option(
    "--catalog",
    default="default",
    show_default=True,
    help="PyIceberg catalog name (~/.pyiceberg.yaml or PYICEBERG_CATALOG__*); "
    "'default' unconfigured = embedded SQLite catalog in ./iceberg-warehouse.",
)
namespace_option = click.option(
    "--namespace",
    default="bioimage",
    show_default=True,
    help="Iceberg namespace, used exactly as given (e.g. bioimage.cytotable).",
)


def _catalog(name: str) -> Catalog:
    """Resolve the catalog, announcing the embedded one once on stderr."""
    resolved = resolve_catalog(name)
    if resolved.embedded_warehouse is not None:
        click.echo(
            f"note: catalog '{name}' is not configured; using the embedded SQLite catalog "
            f"in {resolved.embedded_warehouse}",
            err=True,
        )
    return resolved.catalog


def _writes_table(title: str, writes: Any) -> Table:
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    for name in ("table", "rows written", "snapshot"):
        table.add_column(name)
    for write in writes:
        table.add_row(write.table, f"{write.rows_written:,}", str(write.snapshot_id or "—"))
    return table


def _print_registration(result: Any, as_json: bool) -> None:
    print_warnings(result.dataset.warnings)
    if as_json:
        emit_json(result.to_dict())
        return
    dataset = result.dataset
    stdout.print(
        _writes_table(
            f"registered {dataset.dataset_id} ({dataset.image_count} images, "
            f"{dataset.array_count} arrays, {dataset.chunk_count:,} chunks) "
            f"in {result.namespace}",
            result.tables,
        )
    )


@main.command()
@click.argument("uri")
@catalog_option
@namespace_option
@click.option("--publish-chunks", is_flag=True, help="Also publish the chunk_index table.")
@click.option("--dataset-id", help="Dataset id (default: the store name minus its suffix).")
@click.option("--replace", is_flag=True, help="Re-point a dataset id registered for another store.")
@command_options
def register(
    uri: str,
    catalog: str,
    namespace: str,
    publish_chunks: bool,
    dataset_id: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    """Scan a store and register it in Iceberg (one commit per table, idempotent)."""
    resolved = _catalog(catalog)
    with working(f"Registering {uri}"):
        result = api.register_store(
            uri,
            resolved,
            namespace,
            publish_chunks=publish_chunks,
            dataset_id=dataset_id,
            replace=replace,
        )
    _print_registration(result, as_json)


@main.command("publish-chunks")
@click.argument("uri")
@catalog_option
@namespace_option
@click.option("--dataset-id", help="Dataset id (default: the store name minus its suffix).")
@command_options
def publish_chunks(
    uri: str, catalog: str, namespace: str, dataset_id: str | None, as_json: bool
) -> None:
    """Publish a store's chunk_index table alone."""
    resolved = _catalog(catalog)
    with working(f"Publishing chunks of {uri}"):
        result = api.publish_chunk_index(uri, resolved, namespace, dataset_id=dataset_id)
    _print_registration(result, as_json)


@contextmanager
def _scan_progress(total: int, enabled: bool) -> Iterator[Callable[[ScanResult], None] | None]:
    """A progress bar on stderr (TTY only) advanced once per scanned store."""
    if not enabled or not stderr.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task = progress.add_task("scanning", total=total)

        def advance(result: ScanResult) -> None:
            progress.update(task, advance=1, description=f"scanned {result.dataset_id}")

        yield advance


@main.command()
@click.argument("uris", nargs=-1, required=True)
@catalog_option
@namespace_option
@click.option(
    "--glob", "pattern", help="Treat URIS as folders and ingest the stores matching this."
)
@click.option("--workers", type=click.IntRange(1, 64), help="Stores scanned at once.")
@click.option("--no-chunks", is_flag=True, help="Publish image_assets only.")
@click.option("--replace", is_flag=True, help="Re-point dataset ids registered for other stores.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@command_options
def ingest(
    uris: tuple[str, ...],
    catalog: str,
    namespace: str,
    pattern: str | None,
    workers: int | None,
    no_chunks: bool,
    replace: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Scan many stores in parallel and publish them with one commit per table."""
    from iceberg_bioimage.publishing.registration import expand_uris

    resolved = _catalog(catalog)
    stores = expand_uris(list(uris), pattern)
    with _scan_progress(len(stores), not quiet) as advance:
        result = api.ingest_stores_to_warehouse(
            stores,
            resolved,
            namespace,
            publish_chunks=not no_chunks,
            workers=workers,
            replace=replace,
            on_scanned=advance,
        )
    for dataset in result.datasets:
        print_warnings(dataset.warnings)
    if as_json:
        emit_json(result.to_dict())
        return
    stdout.print(
        _writes_table(
            f"ingested {len(result.datasets)} stores into {result.namespace}", result.tables
        )
    )


@main.command()
@click.argument("uri_or_dataset_id")
@catalog_option
@namespace_option
@command_options
def deregister(uri_or_dataset_id: str, catalog: str, namespace: str, as_json: bool) -> None:
    """Remove a dataset's rows (by dataset id or store URI) from the catalog tables."""
    result = api.deregister_store(uri_or_dataset_id, _catalog(catalog), namespace)
    if as_json:
        emit_json(result.to_dict())
        return
    stdout.print(
        _writes_table(f"removed {', '.join(result.dataset_ids)} from {namespace}", result.tables)
    )


@main.command()
@catalog_option
@namespace_option
@command_options
def tables(catalog: str, namespace: str, as_json: bool) -> None:
    """List the tables of a namespace with their row counts and current snapshot."""
    resolved = _catalog(catalog)
    rows = []
    for name in api.list_catalog_tables(resolved, namespace):
        table = resolved.load_table((*namespace.split("."), name))
        snapshot = table.current_snapshot()
        summary = snapshot.summary if snapshot else None
        count = int(summary["total-records"]) if summary and "total-records" in summary else 0
        rows.append(
            {
                "table": f"{namespace}.{name}",
                "rows": count,
                "snapshot_id": snapshot.snapshot_id if snapshot else None,
                "snapshots": len(table.snapshots()),
                "location": table.location(),
            }
        )
    if as_json:
        emit_json(rows)
        return
    table_view = Table(title=f"tables in {namespace}", title_justify="left", box=None)
    for name in ("table", "rows", "snapshots", "current snapshot"):
        table_view.add_column(name)
    for row in rows:
        table_view.add_row(
            row["table"], f"{row['rows']:,}", str(row["snapshots"]), str(row["snapshot_id"])
        )
    stdout.print(table_view)


# -- Cytomining: contract, joins, warehouse -------------------------------------

profile_dataset_option = click.option(
    "--profile-dataset-id",
    help="Dataset id for profile rows that have no dataset_id column.",
)
aliases_option = click.option(
    "--aliases",
    "aliases_path",
    type=click.Path(dir_okay=False),
    help="TOML file with extra column aliases under [microscopy.aliases].",
)


def _alias_map(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from iceberg_bioimage.validation.contract import load_profile_column_aliases

    return dict(load_profile_column_aliases(path))


def _facts_table(title: str, facts: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in facts:
        table.add_row(name, value)
    return table


@main.command("validate-contract")
@click.argument("profiles")
@profile_dataset_option
@aliases_option
@command_options
def validate_contract(
    profiles: str, profile_dataset_id: str | None, aliases_path: str | None, as_json: bool
) -> None:
    """Check a profile table against the microscopy join contract."""
    from iceberg_bioimage.validation.contract import validate_microscopy_profile_table

    result = validate_microscopy_profile_table(
        profiles, profile_dataset_id=profile_dataset_id, alias_map=_alias_map(aliases_path)
    )
    print_warnings(result.warnings)
    if as_json:
        emit_json(result.to_dict())
    else:
        aliases = ", ".join(f"{k} ← {v}" for k, v in result.resolved_aliases.items())
        stdout.print(
            _facts_table(
                f"{profiles}: {'valid' if result.is_valid else 'INVALID'}",
                [
                    ("rows", f"{result.row_count:,}"),
                    ("join keys", ", ".join(result.join_keys) or "—"),
                    ("aliases", aliases or "—"),
                    ("missing", ", ".join(result.missing_columns) or "—"),
                ],
            )
        )
    if not result.is_valid:
        _fail(f"{profiles}: {'; '.join(result.errors)}", 2, False)


def _write_table(table: pa.Table, output: str) -> None:
    lowered = output.lower()
    if lowered.endswith((".csv", ".tsv")):
        import pyarrow.csv as pacsv

        delimiter = "\t" if lowered.endswith(".tsv") else ","
        plain = table.select(
            [n for n in table.column_names if not pa.types.is_nested(table.schema.field(n).type)]
        )
        pacsv.write_csv(plain, output, write_options=pacsv.WriteOptions(delimiter=delimiter))
    elif lowered.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(table, output, compression="zstd")
    else:
        raise click.BadParameter("use a .parquet, .csv or .tsv file name", param_hint="--output")


@main.command("join-profiles")
@click.argument("uri")
@click.argument("profiles")
@click.option(
    "--output", type=click.Path(dir_okay=False), help="Write the joined table (.parquet/.csv/.tsv)."
)
@profile_dataset_option
@click.option("--include-chunks", is_flag=True, help="One row per chunk of each matched image.")
@aliases_option
@command_options
def join_profiles(
    uri: str,
    profiles: str,
    output: str | None,
    profile_dataset_id: str | None,
    include_chunks: bool,
    aliases_path: str | None,
    as_json: bool,
) -> None:
    """Join a profile table to the images of a store (DuckDB)."""
    from iceberg_bioimage.integrations.duckdb import join_report

    with working(f"Joining {profiles} to {uri}"):
        joined = api.join_profiles_with_store(
            uri,
            profiles,
            profile_dataset_id=profile_dataset_id,
            include_chunks=include_chunks,
            alias_map=_alias_map(aliases_path),
        )
        if output:
            _write_table(joined, output)
    report = {**join_report(joined), "rows": joined.num_rows, "output": output}
    if report.get("unmatched_rows"):
        click.echo(f"warning: {report['unmatched_rows']:,} profile rows match no image", err=True)
    if as_json:
        emit_json(report)
        return
    stdout.print(
        _facts_table(
            f"joined {profiles} to {uri}",
            [
                ("join keys", ", ".join(report.get("join_keys", []))),
                ("profile rows", f"{report.get('profile_rows', 0):,}"),
                ("matched", f"{report.get('matched_rows', 0):,}"),
                ("unmatched", f"{report.get('unmatched_rows', 0):,}"),
                ("output", output or "— (use --output to save)"),
            ],
        )
    )


def _print_export(result: Any, as_json: bool) -> None:
    if as_json:
        emit_json(result.to_dict())
        return
    table = Table(
        title=f"warehouse {result.warehouse_root} ({result.layout}, {result.mode})",
        title_justify="left",
        box=None,
        header_style="bold",
    )
    for name in ("table", "role", "rows written", "datasets"):
        table.add_column(name)
    for write in result.tables:
        table.add_row(
            write.table_name, write.role, f"{write.rows_written:,}", ", ".join(write.datasets)
        )
    stdout.print(table)
    if result.join:
        stdout.print(
            f"joined on {', '.join(result.join['join_keys'])}: "
            f"{result.join['matched_rows']:,} matched, {result.join['unmatched_rows']:,} unmatched"
        )


warehouse_root_option = click.option(
    "--warehouse-root", required=True, type=click.Path(file_okay=False), help="Warehouse folder."
)
mode_option = click.option(
    "--mode",
    type=click.Choice(["overwrite", "append"]),
    default="overwrite",
    show_default=True,
    help="overwrite replaces a dataset's rows; append refuses datasets already present.",
)
layout_option = click.option(
    "--layout",
    type=click.Choice(["namespaced", "flat"]),
    default="namespaced",
    show_default=True,
    help="namespaced: images/…, profiles/… (Warehouse Spec 1.0); flat: the seed layout.",
)


@main.command("export-cytomining")
@click.argument("uri")
@warehouse_root_option
@click.option("--profiles", help="Profile table to join and write as profiles.joined_profiles.")
@profile_dataset_option
@mode_option
@layout_option
@click.option("--no-chunks", is_flag=True, help="Do not write images.chunk_index.")
@click.option("--dataset-id", help="Dataset id (default: the store name minus its suffix).")
@aliases_option
@command_options
def export_cytomining(
    uri: str,
    warehouse_root: str,
    profiles: str | None,
    profile_dataset_id: str | None,
    mode: str,
    layout: str,
    no_chunks: bool,
    dataset_id: str | None,
    aliases_path: str | None,
    as_json: bool,
) -> None:
    """Scan a store and write a Cytomining Parquet warehouse (no catalog needed)."""
    with working(f"Exporting {uri}"):
        result = api.export_store_to_cytomining_warehouse(
            uri,
            warehouse_root,
            profiles=profiles,
            profile_dataset_id=profile_dataset_id,
            include_chunks=not no_chunks,
            mode=mode,  # type: ignore[arg-type]
            layout=layout,  # type: ignore[arg-type]
            dataset_id=dataset_id,
            alias_map=_alias_map(aliases_path),
        )
    _print_export(result, as_json)


@main.command("export-cytomining-catalog")
@catalog_option
@namespace_option
@warehouse_root_option
@click.option(
    "--dataset-id", "dataset_ids", multiple=True, help="Only these datasets (repeatable)."
)
@click.option("--profiles", help="Profile table to join and write as profiles.joined_profiles.")
@profile_dataset_option
@mode_option
@layout_option
@click.option("--no-chunks", is_flag=True, help="Do not write images.chunk_index.")
@aliases_option
@command_options
def export_cytomining_catalog(
    catalog: str,
    namespace: str,
    warehouse_root: str,
    dataset_ids: tuple[str, ...],
    profiles: str | None,
    profile_dataset_id: str | None,
    mode: str,
    layout: str,
    no_chunks: bool,
    aliases_path: str | None,
    as_json: bool,
) -> None:
    """Write catalog tables (and joined profiles) to a Cytomining Parquet warehouse."""
    resolved = _catalog(catalog)
    with working(f"Exporting {namespace}"):
        result = api.export_catalog_to_cytomining_warehouse(
            resolved,
            namespace,
            warehouse_root,
            dataset_ids=list(dataset_ids) or None,
            profiles=profiles,
            profile_dataset_id=profile_dataset_id,
            include_chunks=not no_chunks,
            mode=mode,  # type: ignore[arg-type]
            layout=layout,  # type: ignore[arg-type]
            alias_map=_alias_map(aliases_path),
        )
    _print_export(result, as_json)


@main.command("export-cytomining-profiles")
@click.argument("profiles")
@warehouse_root_option
@click.option("--table-name", required=True, help="e.g. pycytominer_profiles (→ profiles.…).")
@click.option(
    "--role",
    type=click.Choice(
        ["joined_profiles", "quality_control", "embeddings", "annotations", "reports"]
    ),
    default="joined_profiles",
    show_default=True,
    help="Manifest role; quality_control tables need a boolean qc_pass.",
)
@profile_dataset_option
@click.option(
    "--mode",
    type=click.Choice(["overwrite", "append"]),
    default="append",
    show_default=True,
    help="append refuses datasets already in the table; overwrite replaces them.",
)
@aliases_option
@command_options
def export_cytomining_profiles(
    profiles: str,
    warehouse_root: str,
    table_name: str,
    role: str,
    profile_dataset_id: str | None,
    mode: str,
    aliases_path: str | None,
    as_json: bool,
) -> None:
    """Add a profile table (pycytominer, coSMicQC output...) to a warehouse."""
    result = api.export_profiles_to_cytomining_warehouse(
        profiles,
        warehouse_root,
        table_name=table_name,
        role=role,
        profile_dataset_id=profile_dataset_id,
        alias_map=_alias_map(aliases_path),
        mode=mode,  # type: ignore[arg-type]
    )
    _print_export(result, as_json)


@main.command("validate-warehouse")
@click.argument("warehouse_root", type=click.Path())
@command_options
def validate_warehouse(warehouse_root: str, as_json: bool) -> None:
    """Check a warehouse against the Cytomining Warehouse Specification."""
    from iceberg_bioimage.validation.warehouse import validate_warehouse as check

    result = check(warehouse_root)
    print_warnings(result.warnings)
    if as_json:
        emit_json(result.to_dict())
    else:
        table = Table(
            title=f"{warehouse_root}: {'valid' if result.is_valid else 'INVALID'} "
            f"({', '.join(result.conformance_profiles) or 'no profile'})",
            title_justify="left",
            box=None,
            header_style="bold",
        )
        for name in ("table", "role", "rows", "ok"):
            table.add_column(name)
        for entry in result.tables:
            table.add_row(
                str(entry.get("table_name")),
                str(entry.get("role")),
                f"{entry.get('rows', 0):,}",
                "yes" if entry.get("ok") else "NO",
            )
        stdout.print(table)
    if not result.is_valid:
        _fail(f"{warehouse_root}: {'; '.join(result.errors)}", 2, False)
