"""Single-cell crops: ``export-crops``."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from iceberg_bioimage import api
from iceberg_bioimage.cli.catalog_commands import _catalog, catalog_option, namespace_option
from iceberg_bioimage.cli.output import (
    command_options,
    emit_json,
    facts_table,
    print_warnings,
    stdout,
    working,
)
from iceberg_bioimage.cli.storage_options import storage_option
from iceberg_bioimage.models.options import CropOptions

_WHERE = re.compile(
    r"^\s*(?P<column>\S+)\s+(?P<op>not\s+in|in|is\s+not\s+null|is\s+null|like|==|!=|<=|>=|=|<|>)"
    r"\s*(?P<value>.*?)\s*$",
    re.IGNORECASE,
)


def _value(text: str) -> Any:
    """A JSON number/boolean, or the text without surrounding quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


def parse_where(text: str) -> tuple[Any, ...]:
    """``"<column> <op> <value>"`` as a ``query_metadata_table`` filter tuple.

    ``in``/``not in`` take a comma list (brackets or parentheses optional).
    """
    match = _WHERE.match(text)
    if match is None:
        raise click.BadParameter(f"{text!r} is not '<column> <op> <value>'", param_hint="'--where'")
    column, value = match["column"], match["value"]
    op = " ".join(match["op"].lower().split())
    if op in ("is null", "is not null"):
        if value:
            raise click.BadParameter(f"{text!r}: {op!r} takes no value", param_hint="'--where'")
        return (column, op)
    if op in ("in", "not in"):
        items = value.strip("[]()")
        return (column, op, [_value(v) for v in items.split(",") if v.strip()])
    return (column, op, _value(value))


def _where(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> Any:
    return [parse_where(v) for v in values] or None


def _channels(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    return [int(v) if v.strip().isdigit() else v.strip() for v in value.split(",") if v.strip()]


@click.command("export-crops")
@click.argument("store", required=False)
@click.option(
    "--warehouse-root",
    required=True,
    type=click.Path(file_okay=False),
    help="Cytomining warehouse to write images.image_crops into.",
)
@click.option(
    "--profiles",
    required=True,
    help="Profiles (Parquet/CSV file or folder) whose objects to crop.",
)
@click.option("--size", type=click.IntRange(min=1), help="Crop N×N pixels around Location_Center.")
@click.option(
    "--channels",
    callback=_channels,
    help="Channel names or indices, comma-separated (default: every channel).",
)
@click.option(
    "--level",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Pyramid level to read (boxes scaled to it).",
)
@click.option(
    "--where",
    multiple=True,
    callback=_where,
    help="Filter profiles first: '<column> <op> <value>' (repeatable; all must hold).",
)
@click.option("--profile-dataset-id", help="Dataset id for profile rows without one.")
@click.option("--compartment", help="Compartment whose boxes to use (e.g. Nuclei).")
@click.option(
    "--source-images",
    is_flag=True,
    help="Also write images.source_images: each cropped image whole (OME-Arrow).",
)
@click.option(
    "--labels",
    is_flag=True,
    help="Also crop each object's segmentation (NGFF labels/, or --mask-dir/--outline-dir).",
)
@click.option(
    "--mask-dir",
    type=click.Path(file_okay=False),
    help="Folder of CellProfiler label images (<plate>_<well>_s<site>_<Compartment>_mask.tiff).",
)
@click.option(
    "--outline-dir",
    type=click.Path(file_okay=False),
    help="Folder of CellProfiler outline images (..._<Compartment>_outlines.tiff).",
)
@click.option(
    "--mask-pattern",
    help="Regex matching mask/outline file names, groups plate, well, site, compartment.",
)
@catalog_option
@namespace_option
@storage_option
@command_options
def export_crops(
    store: str | None,
    warehouse_root: str,
    profiles: str,
    size: int | None,
    channels: list[str | int] | None,
    level: int,
    where: list[tuple[Any, ...]] | None,
    profile_dataset_id: str | None,
    compartment: str | None,
    source_images: bool,
    labels: bool,
    mask_dir: str | None,
    outline_dir: str | None,
    mask_pattern: str | None,
    catalog: str,
    namespace: str,
    as_json: bool,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Write single-cell crops of profile rows (only the chunks they touch are read).

    STORE is the image store; without it the images and chunk index come from
    --catalog/--namespace.
    """
    with working(f"Cropping the objects of {profiles}"):
        result = api.export_image_crops(
            store,
            warehouse_root,
            profiles=profiles,
            catalog=None if store else _catalog(catalog),
            namespace=None if store else namespace,
            crop=CropOptions(
                size=size,
                channels=channels,
                level=level,
                compartment=compartment,
                source_images=source_images,
                labels=labels,
                mask_dir=mask_dir,
                outline_dir=outline_dir,
                mask_pattern=mask_pattern,
            ),
            storage_options=storage_options,
            profile_dataset_id=profile_dataset_id,
            where=where,
        )
    print_warnings(result.warnings)
    if as_json:
        emit_json(result.to_dict())
        return
    reads = result.reads
    stdout.print(
        facts_table(
            f"crops → {result.warehouse_root}",
            [
                ("table", result.table.table_name),
                (
                    "source images",
                    f"{result.source_images.rows_written:,}" if result.source_images else "—",
                ),
                ("crops", f"{result.crops:,}"),
                (
                    "with labels",
                    f"{result.labelled:,}" if labels or mask_dir or outline_dir else "—",
                ),
                (
                    "profile table",
                    result.profile_with_images.table_name if result.profile_with_images else "—",
                ),
                ("skipped", f"{result.skipped:,} empty, {result.unmatched:,} without image"),
                ("chunks read", f"{reads['chunks_fetched']:,}"),
                ("bytes read", f"{reads['bytes_fetched']:,}"),
            ],
        )
    )
