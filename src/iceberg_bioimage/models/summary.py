"""User-facing summary of a scanned dataset, including an HCS plate map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iceberg_bioimage.models.keys import row_index, row_letters, split_well_id
from iceberg_bioimage.models.scan import ScanResult


@dataclass(frozen=True, kw_only=True)
class DatasetSummary:
    """Counts and distinct values of one scanned store."""

    dataset_id: str
    uri: str
    format: str
    storage_variant: str
    image_count: int
    array_count: int
    chunk_count: int
    nbytes: int
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    axes: tuple[str, ...]
    channel_names: tuple[str, ...]
    multiscale_levels: int
    plate_ids: tuple[str, ...]
    fields_per_well: dict[str, int]
    site_ids: tuple[str, ...]
    warnings: tuple[str, ...]

    @classmethod
    def from_scan(cls, result: ScanResult) -> DatasetSummary:
        """Summarise a scan result."""
        assets = result.image_assets
        sites_by_well: dict[str, set[str]] = {}
        for asset in assets:
            if asset.well_id is not None:
                sites_by_well.setdefault(asset.well_id, set()).add(asset.site_id or "")
        wells = sorted(sites_by_well, key=_well_sort_key)
        return cls(
            dataset_id=result.dataset_id,
            uri=result.uri,
            format=result.format,
            storage_variant=result.storage_variant,
            image_count=result.image_count,
            array_count=result.array_count,
            chunk_count=result.chunk_count,
            nbytes=sum(asset.nbytes for asset in assets),
            shapes=tuple(dict.fromkeys(asset.shape for asset in assets)),
            dtypes=tuple(dict.fromkeys(asset.dtype for asset in assets)),
            axes=tuple(dict.fromkeys(asset.axes for asset in assets if asset.axes)),
            channel_names=tuple(
                dict.fromkeys(name for asset in assets for name in asset.channel_names or ())
            ),
            multiscale_levels=max((asset.multiscale_level for asset in assets), default=-1) + 1,
            plate_ids=tuple(dict.fromkeys(asset.plate_id for asset in assets if asset.plate_id)),
            fields_per_well={well: len(sites_by_well[well]) for well in wells},
            site_ids=tuple(
                sorted(
                    {site for sites in sites_by_well.values() for site in sites},
                    key=lambda s: (len(s), s),
                )
            ),
            warnings=result.warnings,
        )

    @property
    def well_count(self) -> int:
        """Number of wells with at least one field."""
        return len(self.fields_per_well)

    def plate_grid(self) -> tuple[list[str], list[str], dict[tuple[str, str], int]]:
        """Rows, columns and fields per ``(row, column)`` for drawing a plate map."""
        cells: dict[tuple[str, str], int] = {}
        for well, fields in self.fields_per_well.items():
            try:
                cells[split_well_id(well)] = fields
            except ValueError:
                continue
        rows = sorted({r for r, _ in cells}, key=lambda r: (len(r), r))
        columns = sorted({c for _, c in cells}, key=int)
        if rows and columns:
            rows = _row_range(rows[0], rows[-1])
            columns = [f"{c:02d}" for c in range(int(columns[0]), int(columns[-1]) + 1)]
        return rows, columns, cells

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-safe values."""
        return {
            "dataset_id": self.dataset_id,
            "uri": self.uri,
            "format": self.format,
            "storage_variant": self.storage_variant,
            "image_count": self.image_count,
            "array_count": self.array_count,
            "chunk_count": self.chunk_count,
            "nbytes": self.nbytes,
            "shapes": [list(shape) for shape in self.shapes],
            "dtypes": list(self.dtypes),
            "axes": list(self.axes),
            "channel_names": list(self.channel_names),
            "multiscale_levels": self.multiscale_levels,
            "plate_ids": list(self.plate_ids),
            "well_count": self.well_count,
            "fields_per_well": dict(self.fields_per_well),
            "site_ids": list(self.site_ids),
            "warnings": list(self.warnings),
        }


def _well_sort_key(well: str) -> tuple[int, str, int]:
    try:
        row, column = split_well_id(well)
    except ValueError:
        return (99, well, 0)
    return (len(row), row, int(column))


def _row_range(first: str, last: str) -> list[str]:
    return [row_letters(i) for i in range(row_index(first), row_index(last) + 1)]


__all__ = ["DatasetSummary"]
