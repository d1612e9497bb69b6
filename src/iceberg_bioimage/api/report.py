"""The self-contained HTML plate report (SPEC §12)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.models.options import ProfileOptions, ReportOptions, StoreOptions
from iceberg_bioimage.models.results import PlateReportResult

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

__all__ = ["write_plate_report"]


def write_plate_report(
    source: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    profiles: Any = None,
    options: ReportOptions | None = None,
    profile_options: ProfileOptions | None = None,
    warehouse_root: str | os.PathLike[str] | None = None,
    catalog: str | Catalog | None = None,
    namespace: str | None = None,
    store: StoreOptions | None = None,
) -> PlateReportResult:
    """Write one self-contained HTML page showing a plate: thumbnails, heatmaps and cells.

    ``source`` is any store the package scans (NGFF HCS plate, instrument TIFF folder,
    LoadData table; local or fsspec URL), or ``None`` with ``catalog``, ``namespace``
    and ``dataset_id`` (images and chunk index from the catalog). Thumbnails are read
    through the chunk index from the lowest pyramid level at least
    ``options.thumbnail_size`` large. ``profiles`` (any source the joins accept) adds
    cell counts, feature heatmaps and each well's cell crops; ``profile_options.platemap``
    adds platemap heatmaps; ``warehouse_root`` adds heatmaps of its
    ``quality_control`` tables' flags and receives the thumbnails as
    ``images.thumbnails`` (role ``reports``). ``store`` carries the dataset id (which
    dataset of the catalog; the profiles' dataset), fsspec storage options and the
    file-set options of instrument TIFF folders. The page needs no server or network.
    """
    from iceberg_bioimage.report.inputs import report_inputs
    from iceberg_bioimage.report.run import build_report, write_page

    options = options or ReportOptions()
    store = store or StoreOptions()
    dataset_id, storage_options = store.dataset_id, store.storage_options
    _check(options)
    images, chunks, label = report_inputs(source, catalog=catalog, namespace=namespace, store=store)
    report = build_report(
        images,
        chunks,
        options=options,
        profiles=profiles,
        profile_options=profile_options,
        profile_dataset_id=dataset_id or _only_dataset(images),
        warehouse_root=warehouse_root,
        storage_options=storage_options,
        label=label,
    )
    title = options.title or f"Plate {report.data['dataset_id']}"
    html_bytes = write_page(report, output, title=title)
    write = None
    if warehouse_root is not None:
        write = _write_thumbnails(report, images, chunks, warehouse_root, source)
    data = report.data
    fields = sum(len(w["fields"]) for w in data["wells"].values())
    grid = len(data["rows"]) * len(data["columns"])
    thumbs = report.thumbnails.thumbnails
    return PlateReportResult(
        output=os.fspath(output),
        dataset_id=data["dataset_id"],
        wells=len(data["wells"]),
        wells_missing=grid - len(data["wells"]),
        fields=fields,
        fields_missing=sum(len(w["missing_fields"]) for w in data["wells"].values()),
        absent_chunks=sum(t.absent_chunks for t in thumbs),
        cells=report.cells.objects.num_rows if report.cells is not None else 0,
        crops=len(report.cells.crops) if report.cells is not None else 0,
        heatmaps=len(data["heatmaps"]),
        html_bytes=html_bytes,
        reads=report.thumbnails.stats.to_dict(),
        levels=tuple(sorted({t.level for t in thumbs})),
        thumbnails_table=write,
        warnings=tuple(report.warnings),
    )


def _check(options: ReportOptions) -> None:
    low, high = options.percentiles
    if not 0 <= low < high <= 100:
        raise ContractError("percentiles", f"need 0 <= low < high <= 100, got {low}, {high}")
    for name in ("thumbnail_size", "cells_per_well", "crop_size", "max_features"):
        if getattr(options, name) < 1:
            raise ContractError(name, f"must be at least 1, got {getattr(options, name)}")


def _only_dataset(images: Any) -> str | None:
    ids = set(images["dataset_id"].to_pylist())
    return ids.pop() if len(ids) == 1 else None


def _write_thumbnails(
    report: Any,
    images: Any,
    chunks: Any,
    warehouse_root: str | os.PathLike[str],
    source: str | os.PathLike[str] | None,
) -> Any:
    from iceberg_bioimage.report.run import thumbnails_table
    from iceberg_bioimage.warehouse.export import (
        canonical_request,
        existing_layout,
        warehouse_image_assets,
    )
    from iceberg_bioimage.warehouse.write import write_tables

    sources = [os.fspath(source)] if source is not None else []
    requests = [canonical_request("reports", thumbnails_table(report), sources)]
    existing = warehouse_image_assets(warehouse_root)
    known = set(existing["image_id"].to_pylist()) if existing is not None else set()
    if not set(images["image_id"].to_pylist()) <= known:  # so the warehouse validates
        requests.insert(0, canonical_request("image_assets", images, sources))
    _, writes = write_tables(
        warehouse_root, requests, mode="overwrite", layout=existing_layout(warehouse_root)
    )
    return writes[-1]
