"""Commands that read stores: scan, summarize, sample-data."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from iceberg_bioimage import api
from iceberg_bioimage.cli.file_set_options import file_set_options
from iceberg_bioimage.cli.output import (
    command_options,
    emit_json,
    print_warnings,
    stdout,
    working,
)
from iceberg_bioimage.cli.storage_options import storage_option
from iceberg_bioimage.models import DatasetSummary, ScanResult
from iceberg_bioimage.models.file_sets import FileSetOptions


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


@click.command()
@click.argument("uri", required=False)
@click.option("--dataset-id", help="Dataset id (default: the store name minus its suffix).")
@click.option("--stat-chunks", is_flag=True, help="List stored chunks: sizes and absent chunks.")
@click.option(
    "--read-shard-index",
    is_flag=True,
    help="Read shard indexes for inner chunk byte ranges.",
)
@file_set_options
@storage_option
@command_options
def scan(
    uri: str,
    dataset_id: str | None,
    stat_chunks: bool,
    read_shard_index: bool,
    as_json: bool,
    storage_options: dict[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> None:
    """Scan a Zarr store, TIFF file, TIFF plate folder or LoadData table (metadata only)."""
    with working(f"Scanning {uri}"):
        result = api.scan_store(
            uri,
            dataset_id=dataset_id,
            stat_chunks=stat_chunks,
            read_shard_index=read_shard_index,
            file_set=file_set,
            storage_options=storage_options,
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


@click.command()
@click.argument("uri", required=False)
@click.option("--dataset-id", help="Dataset id (default: the store name minus its suffix).")
@file_set_options
@storage_option
@command_options
def summarize(
    uri: str,
    dataset_id: str | None,
    as_json: bool,
    storage_options: dict[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> None:
    """Summarise a store: counts, shapes, channels and, for a plate, a plate map."""
    with working(f"Scanning {uri}"):
        summary = api.summarize_store(
            uri, dataset_id=dataset_id, storage_options=storage_options, file_set=file_set
        )
    print_warnings(summary.warnings)
    if as_json:
        emit_json(summary.to_dict())
        return
    stdout.print(_summary_table(summary))
    plate_map = _plate_map(summary)
    if plate_map is not None:
        stdout.print()
        stdout.print(plate_map)


@click.command("sample-data")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace sample files that already exist.")
@command_options
def sample_data(directory: str, overwrite: bool, as_json: bool) -> None:
    """Write a small OME-Zarr plate, OME-NGFF 0.5 image, OME-TIFF, profiles and TIFF plate."""
    try:
        written = api.write_sample_data(directory, overwrite=overwrite)
    except FileExistsError as error:
        raise FileExistsError(str(error).replace("overwrite=True", "--overwrite")) from error
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
        ("TIFF plate (Phenix names)", written.phenix),
        ("LoadData CSV", written.load_data),
    ):
        table.add_row(name, str(path))
    stdout.print(table)
    stdout.print(f"\nnext: iceberg-bioimage summarize {written.plate}")
