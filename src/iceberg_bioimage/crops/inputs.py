"""What a crop run reads: the objects to cut, their images and the chunks that hold them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.crops.boxes import resolve_box_columns
from iceberg_bioimage.crops.labels import LabelSpec, folder_label_tables, ngff_parent
from iceberg_bioimage.crops.objects import dataset_ids_of, has_image_ids, identified
from iceberg_bioimage.crops.run import CropPlan, ImageCrops
from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.formats import scan
from iceberg_bioimage.models import ScanOptions
from iceberg_bioimage.models.options import BoxColumnNames
from iceberg_bioimage.profiles.contract import profile_dataset_ids
from iceberg_bioimage.profiles.image_numbers import attach_image_keys, needs_image_table
from iceberg_bioimage.profiles.read_and_join import join_profile_source
from iceberg_bioimage.profiles.sources import ProfileSet, read_profile_set
from iceberg_bioimage.profiles.sqlite import SqliteTable, read_sqlite_table
from iceberg_bioimage.tables.build import canonical_table
from iceberg_bioimage.tables.query import query_metadata_table
from iceberg_bioimage.warehouse.export import image_requests, warehouse_image_assets
from iceberg_bioimage.warehouse.write import TableRequest

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


def crop_profiles(
    profiles: Any, compartment: str | None, image_table: Any = None
) -> tuple[pa.Table, str, str | None]:
    """The profile rows to crop, their label, and the source's compartment for them.

    Read through :func:`~iceberg_bioimage.profiles.sources.read_profile_set`, so every
    source the joins take works here too: ImageNumber-only object files with the Image
    table beside them, CellProfiler output folders and per-site folders, SQLite.
    Object rows come keyed to their images' plate/well/site. A source of several
    compartments needs ``compartment`` (the error names those present).
    """
    profile_set = read_profile_set(profiles, image_table=image_table)
    if list(profile_set.tables) == [None]:
        chosen, table = None, profile_set.tables[None]
    else:
        chosen, table = profile_set.select(compartment.lower() if compartment else None)
    label = profile_set.label
    if profile_set.multi_table and chosen is not None:
        label = f"{label} ({chosen})"
    if isinstance(table, SqliteTable):
        table = _keyed_sqlite(table, profile_set, label)
    return table, label, chosen


def _keyed_sqlite(table: SqliteTable, profile_set: ProfileSet, label: str) -> pa.Table:
    """A SQLite object table in memory, its rows keyed through the source's Image table."""
    rows = read_sqlite_table(table.path, table.name)
    if profile_set.image is None or not needs_image_table(rows, None):
        return rows
    keyed, _report = attach_image_keys(
        rows, profile_set.image, label=label, image_label=f"{profile_set.label} (Image table)"
    )
    return keyed


def crop_inputs(
    source: str | os.PathLike[str] | None,
    table: pa.Table,
    label: str,
    *,
    compartment: str | None = None,
    catalog: str | Catalog | None,
    namespace: str | None,
    profile_dataset_id: str | None,
    where: Iterable[Sequence[Any]] | None,
    storage_options: Mapping[str, Any] | None,
    plan: CropPlan,
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Objects (profile rows with ``image_id``/``object_id``), image_assets and chunk_index.

    Images come from a scan of ``source`` or from the catalog tables (only the
    datasets and images the objects name). Rows without ``image_id`` get it from the
    join of the profiles to the images; ``object_id`` always from ``ObjectNumber``.
    """

    if where:
        table = query_metadata_table(table, filters=where, label=label)
    keyed = has_image_ids(table)
    if source is not None:
        options = ScanOptions(read_shard_index=True)
        result = scan(source, options=options, storage_options=storage_options)
        images = canonical_table(result, "image_assets")
        profile_dataset_id = profile_dataset_id or result.dataset_id
    elif catalog is not None and namespace is not None:
        from iceberg_bioimage.catalog.read import load_named_table  # pyiceberg: only here

        ids = (
            dataset_ids_of(table["image_id"])
            if keyed
            else profile_dataset_ids(table, profile_dataset_id, None)
        )
        images = load_named_table(
            catalog, namespace, "image_assets", filters=[("dataset_id", "in", ids)]
        )
    else:
        raise ContractError(label, "give a store, or catalog= and namespace=")
    if not keyed:  # image_id and object_id from the join every other command runs
        numbered = table.append_column("_crop_row", pa.array(np.arange(table.num_rows)))
        one = ProfileSet(
            label=label,
            tables={compartment: numbered},
            image=None,
            warnings=(),
            multi_table=compartment is not None,
        )
        (joined,) = join_profile_source(images, one, profile_dataset_id=profile_dataset_id)
        joined = joined.to_table()
        table = joined.take(pc.sort_indices(joined["_crop_row"])).drop_columns(["_crop_row"])
        if "object_id" in table.column_names and table["object_id"].null_count == table.num_rows:
            table = table.drop_columns(["object_id"])
    objects = identified(table, compartment, label, box_compartment=plan.box_columns.compartment)
    if source is not None:
        chunks = canonical_table(result, "chunk_index")
    else:
        wanted = sorted(v for v in pc.unique(objects["image_id"]).to_pylist() if v)
        if plan.labels is not None:
            wanted += _label_ids(images, wanted)
        filters = [
            ("dataset_id", "in", dataset_ids_of(pa.array(wanted))),
            ("image_id", "in", wanted),
        ]
        from iceberg_bioimage.catalog.read import load_named_table

        chunks = load_named_table(catalog, namespace, "chunk_index", filters=filters)
    if plan.labels is not None and plan.labels.from_folders:
        label_assets, label_chunks = folder_label_tables(objects, images, plan.labels, label)
        images = pa.concat_tables([images, label_assets.cast(images.schema)])
        chunks = pa.concat_tables([chunks, label_chunks.cast(chunks.schema)])
    return objects, images, chunks


def _label_ids(images: pa.Table, wanted: Sequence[str]) -> list[str]:
    """The NGFF label images of the ``wanted`` images."""
    wanted_set = set(wanted)
    ids = set()
    for image_id in images["image_id"].to_pylist():
        parent = ngff_parent(image_id)
        if parent is not None and parent[0] in wanted_set:
            ids.add(image_id)
    return sorted(ids)


def crop_plan(
    profiles_columns: Sequence[str],
    *,
    size: int | None,
    bbox_columns: BoxColumnNames | None,
    channels: Sequence[str | int] | None,
    level: int,
    compartment: str | None,
    label: str,
    whole_images: bool = False,
    labels: LabelSpec | None = None,
) -> CropPlan:
    box_columns = resolve_box_columns(
        profiles_columns, size=size, bbox_columns=bbox_columns, compartment=compartment, label=label
    )
    return CropPlan(
        box_columns=box_columns,
        channels=tuple(channels) if channels is not None else None,
        level=level,
        whole_images=whole_images,
        labels=labels,
    )


def crops_compartment(crops: ImageCrops) -> str | None:
    """The compartment of the crops' objects (from their ``object_id``), if one."""
    parts = pc.split_pattern(crops.table["object_id"], ":")
    found = {p[-2] for p in parts.to_pylist() if p and len(p) >= 3}
    return found.pop() if len(found) == 1 else None


def missing_image_requests(
    root: str | os.PathLike[str],
    images: pa.Table,
    chunks: pa.Table | None,
    sources: Sequence[str],
) -> list[TableRequest]:
    """``images.image_assets`` (+ ``chunk_index``) requests for datasets the warehouse lacks.

    Only the datasets ``images`` holds that ``images.image_assets`` at ``root`` does
    not; nothing when it holds them all.
    """
    present = warehouse_image_assets(root)
    have = set() if present is None else set(pc.unique(present["dataset_id"]).to_pylist())
    wanted = [d for d in pc.unique(images["dataset_id"]).to_pylist() if d not in have]
    if not wanted:
        return []
    mask = pc.is_in(images["dataset_id"], pa.array(wanted))
    chosen = None
    if chunks is not None:
        chosen = (
            chunks
            if not isinstance(chunks, pa.Table)
            else chunks.filter(pc.is_in(chunks["dataset_id"], pa.array(wanted)))
        )
    return image_requests(images.filter(mask), chosen, sources)
