"""The plate report: ``report``."""

from __future__ import annotations

from typing import Any

import click

from iceberg_bioimage import api
from iceberg_bioimage.cli.catalog_commands import _catalog, catalog_option, namespace_option
from iceberg_bioimage.cli.crop_commands import _channels
from iceberg_bioimage.cli.file_set_options import file_naming_options
from iceberg_bioimage.cli.output import (
    command_options,
    emit_json,
    facts_table,
    print_warnings,
    stdout,
    working,
)
from iceberg_bioimage.cli.profile_options import profile_source_options
from iceberg_bioimage.cli.storage_options import storage_option
from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.options import ProfileOptions, ReportOptions, StoreOptions


def _features(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _percentiles(_ctx: click.Context, _param: click.Parameter, value: str) -> Any:
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not LOW,HIGH", param_hint="'--percentiles'"
        ) from None
    if not 0 <= low < high <= 100:
        raise click.BadParameter(
            f"need 0 <= LOW < HIGH <= 100, got {value!r}", param_hint="'--percentiles'"
        )
    return (low, high)


@click.command("report")
@click.argument("store", required=False)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write (self-contained: opens offline).",
)
@click.option("--profiles", help="Profiles (any source the joins accept): counts, features, cells.")
@click.option(
    "--warehouse-root",
    type=click.Path(file_okay=False),
    help="Warehouse whose quality_control tables to show; receives images.thumbnails.",
)
@click.option("--dataset-id", help="Dataset id (the catalog's dataset without STORE).")
@click.option(
    "--thumbnail-size",
    type=click.IntRange(min=8, max=1024),
    default=96,
    show_default=True,
    help="Longer side of each field's thumbnail, in pixels.",
)
@click.option("--channels", callback=_channels, help="Channel names or indices, comma-separated.")
@click.option(
    "--percentiles",
    default="0.5,99.5",
    show_default=True,
    callback=_percentiles,
    help="Per-channel auto-contrast: LOW,HIGH percentiles over the plate's pixels.",
)
@click.option("--features", callback=_features, help="Profile columns to offer, comma-separated.")
@click.option(
    "--cells-per-well",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Cell crops shown per well.",
)
@click.option("--title", help="Page title (default: 'Plate <dataset id>').")
@profile_source_options
@file_naming_options
@catalog_option
@namespace_option
@storage_option
@command_options
def report(
    store: str | None,
    output: str,
    profiles: str | None,
    warehouse_root: str | None,
    dataset_id: str | None,
    thumbnail_size: int,
    channels: list[str | int] | None,
    percentiles: tuple[float, float],
    features: list[str] | None,
    cells_per_well: int,
    title: str | None,
    profile_options: ProfileOptions,
    catalog: str,
    namespace: str,
    as_json: bool,
    storage_options: dict[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> None:
    """Write one self-contained HTML page of a plate: thumbnails, heatmaps, cells.

    STORE is an NGFF plate, an instrument TIFF folder (--instrument and the other
    naming options when detection needs help) or a LoadData table, local or remote;
    without it the images and chunk index come from --catalog/--namespace and
    --dataset-id.
    """
    if store is None and dataset_id is None:
        raise click.UsageError("Give STORE, or --dataset-id with --catalog/--namespace.")
    with working(f"Writing the report of {store or dataset_id}"):
        result = api.write_plate_report(
            store,
            output,
            profiles=profiles,
            options=ReportOptions(
                thumbnail_size=thumbnail_size,
                channels=channels,
                percentiles=percentiles,
                features=features,
                cells_per_well=cells_per_well,
                title=title,
            ),
            profile_options=profile_options,
            warehouse_root=warehouse_root,
            catalog=None if store else _catalog(catalog),
            namespace=None if store else namespace,
            store=StoreOptions(
                dataset_id=dataset_id, storage_options=storage_options, file_set=file_set
            ),
        )
    print_warnings(result.warnings)
    if as_json:
        emit_json(result.to_dict())
        return
    stdout.print(
        facts_table(
            f"report → {result.output}",
            [
                ("dataset", result.dataset_id),
                ("wells", f"{result.wells:,} drawn, {result.wells_missing:,} missing"),
                ("fields", f"{result.fields:,} drawn, {result.fields_missing:,} missing"),
                ("absent chunks", f"{result.absent_chunks:,}"),
                ("levels read", ", ".join(str(v) for v in result.levels)),
                ("cells", f"{result.cells:,} ({result.crops:,} crops shown)"),
                ("heatmaps", f"{result.heatmaps:,}"),
                ("bytes read", f"{result.reads['bytes_fetched']:,}"),
                ("page size", f"{result.html_bytes:,} bytes"),
                (
                    "thumbnails table",
                    result.thumbnails_table.table_name if result.thumbnails_table else "—",
                ),
            ],
        )
    )
