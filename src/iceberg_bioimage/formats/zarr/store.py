"""Scan a Zarr v2 / v3 store: OME-NGFF images and HCS plates, or plain arrays.

Only metadata documents are read, following plate → well → field → array
references; plain (non-OME) groups are walked by listing group folders, never
array folders. Each level of the traversal is fetched as one batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.formats.registry import FormatReader, Probe
from iceberg_bioimage.formats.zarr import chunk_stats, ngff
from iceberg_bioimage.formats.zarr.metadata import ArrayMetadata, axes_label
from iceberg_bioimage.formats.zarr.nodes import Node, NodeReader, join_path
from iceberg_bioimage.io.storage import LocalStore, Store
from iceberg_bioimage.models import (
    ImageAsset,
    ScanOptions,
    ScanResult,
    ScanStream,
    image_id_for,
    normalize_well_id,
    well_name,
)
from iceberg_bioimage.models.limits import check_chunk_rows
from iceberg_bioimage.runtime import gc_paused


@dataclass(frozen=True, kw_only=True)
class _Placement:
    """Where an image sits on a plate."""

    plate_id: str | None = None
    well_id: str | None = None
    row_name: str | None = None
    column_name: str | None = None
    site_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class _ImageGroup:
    node: Node
    ngff: Mapping[str, Any]
    placement: _Placement
    is_label: bool = False


def zarr_format_of(root_docs: Mapping[str, bytes | None]) -> Literal[2, 3] | None:
    """Detect the Zarr format from the root documents, or ``None``."""
    if root_docs.get("zarr.json") is not None:
        return 3
    if root_docs.get(".zgroup") is not None or root_docs.get(".zarray") is not None:
        return 2
    return None


#: Wells of a plate scanned (and handed to the writers) at a time. A batch of the
#: benchmark plate (9 fields × 3 levels per well) is 1,728 arrays, ~4 MB of models:
#: memory stays flat in the plate size, and each step of a batch (well, field and
#: array documents) is still one concurrent fetch of a remote store.
PLATE_BATCH_WELLS = 64

#: An images unit (non-plate images, in walk order) or a plate unit (group, its plate).
_Unit = tuple[str, Any]


class _Scan:
    """State of one store scan, produced in batches (:meth:`batches`).

    The traversal finds the plates and images first; a plate's wells are then read
    :data:`PLATE_BATCH_WELLS` at a time (wells → fields → labels → arrays) and
    each batch's arrays yielded before the next is read, so only one batch of
    documents and models is alive. Warnings are kept by phase so their order is
    the one a whole-store scan gives (each plate's wells, then its fields, then
    labels, arrays and chunk facts), whatever the batches.
    """

    def __init__(
        self,
        store: Store,
        root_docs: Mapping[str, bytes | None],
        dataset_id: str,
        options: ScanOptions,
        batch_wells: int = PLATE_BATCH_WELLS,
    ) -> None:
        zarr_format = zarr_format_of(root_docs)
        if zarr_format is None:
            raise MetadataError(store.uri, "not a Zarr store (no zarr.json, .zgroup or .zarray)")
        self.store = store
        self.zarr_format: Literal[2, 3] = zarr_format
        self.variant: Literal["zarr-v2", "zarr-v3"] = f"zarr-v{zarr_format}"  # type: ignore[assignment]
        self.reader = NodeReader(store, zarr_format, {k: v for k, v in root_docs.items() if v})
        self.dataset_id = dataset_id
        self.options = options
        self.batch_wells = max(1, batch_wells)
        self.plate_notes: list[list[list[str]]] = []  # per plate: [its wells', its fields']
        self.notes: dict[str, list[str]] = {"labels": [], "assets": [], "chunks": []}
        self.units: list[_Unit] = []
        self.bare_arrays: list[Node] = []
        self.asset_arrays: list[ArrayMetadata] = []
        self.root_docs = root_docs
        self._json_texts: dict[int, tuple[Mapping[str, Any], str]] = {}
        self._remote_labels: bool | None = None
        self.chunk_rows = 0  # chunks of the batches given chunk facts so far

    @property
    def warnings(self) -> list[str]:
        """Every warning so far, in whole-scan order."""
        plates = [note for plate in self.plate_notes for notes in plate for note in notes]
        return plates + [note for notes in self.notes.values() for note in notes]

    def stream(self) -> ScanStream:
        """The scan as a :class:`ScanStream`.

        The traversal (root, plain groups, plate metadata) is read now, so a store
        whose plate is unreadable fails before any writer starts; wells, fields and
        arrays are read as the stream is iterated.
        """
        with gc_paused():
            root = self._root_node()
            if root.kind == "array":
                self.bare_arrays.append(root)
            else:
                self._walk([root])
        return ScanStream(
            dataset_id=self.dataset_id,
            uri=self.store.uri,
            format="zarr",
            storage_variant=self.variant,
            scanned_at=datetime.now(UTC),
            source=self.batches(),
            warnings=lambda: self.warnings,
        )

    def batches(self) -> Iterator[list[ImageAsset]]:
        """The arrays, a batch at a time: each batch is built with collection paused.

        The pause ends at each ``yield``, so the consumer (table builds, Parquet
        writes) runs with the collector on.
        """
        for kind, unit in self.units:
            if kind == "images":
                with gc_paused():
                    assets = self._batch_assets(unit)
                yield assets
                continue
            group, plate = unit
            notes: list[list[str]] = [[], []]
            self.plate_notes.append(notes)
            for start in range(0, len(plate.wells), self.batch_wells):
                wells = plate.wells[start : start + self.batch_wells]
                with gc_paused():
                    images = self._plate_images(group, plate, wells, notes)
                    assets = self._batch_assets(images)
                yield assets
        if self.bare_arrays:
            with gc_paused():
                assets = self._batch_assets([], self.bare_arrays)
            yield assets

    def _batch_assets(
        self, images: list[_ImageGroup], bare: Sequence[Node] = ()
    ) -> list[ImageAsset]:
        """The arrays of ``images`` and of their labels (then of ``bare`` arrays)."""
        self.asset_arrays = []
        self._json_texts = {}  # per batch: it holds each document it encoded
        images = images + self._labels(images)
        assets = self._image_assets(images) + [self._bare_asset(node) for node in bare]
        if self.options.stat_chunks or self.options.read_shard_index:
            # the limit holds for the whole store, not for each batch
            self.chunk_rows += sum(asset.chunk_count for asset in assets)
            check_chunk_rows(self.chunk_rows, self.store.uri, self.store.limits)
            assets, notes = chunk_stats.add_chunk_facts(
                self.store, assets, self.asset_arrays, self.options
            )
            self.notes["chunks"].extend(notes)
        return assets

    # -- traversal ---------------------------------------------------------
    def _root_node(self) -> Node:
        if self.zarr_format == 3:
            return self.reader.v3_node(
                "",
                self.reader.consolidated["zarr.json"]
                if self.reader.consolidated
                else self.root_docs["zarr.json"],
            )
        root = self.reader.probe([""])[0]
        if root is None:  # only when consolidated metadata leaves the root out
            raise MetadataError(
                self.reader.where(".zmetadata"),
                "consolidated metadata has no '.zgroup', '.zarray' or '.zattrs' of the root",
            )
        return root

    def _walk(self, frontier: list[Node]) -> None:
        while frontier:
            plain: list[Node] = []
            for group in frontier:
                block, _version = ngff.ngff_attributes(group.attributes)
                if "plate" in block:
                    self.units.append(("plate", (group, self._parse_plate(group, block))))
                elif "multiscales" in block:
                    image = _ImageGroup(node=group, ngff=block, placement=_Placement())
                    if not self.units or self.units[-1][0] != "images":
                        self.units.append(("images", []))
                    self.units[-1][1].append(image)
                else:
                    plain.append(group)
            child_paths = [child for group in plain for child in self.reader.children(group.path)]
            frontier = []
            for node in self.reader.probe(child_paths):
                if node is None:
                    continue
                if node.kind == "array":
                    self.bare_arrays.append(node)
                else:
                    frontier.append(node)

    def _attrs_location(self, path: str) -> str:
        name = "zarr.json" if self.zarr_format == 3 else ".zattrs"
        return self.reader.where(join_path(path, name))

    def _parse_plate(self, group: Node, block: Mapping[str, Any]) -> ngff.Plate:
        try:
            return ngff.parse_plate(block)
        except ValueError as error:
            raise MetadataError(
                self._attrs_location(group.path), f"invalid plate metadata: {error}"
            ) from error

    def _plate_images(
        self,
        group: Node,
        plate: ngff.Plate,
        wells: Sequence[ngff.PlateWell],
        notes: list[list[str]],
    ) -> list[_ImageGroup]:
        """The field images of some wells of a plate (``notes``: wells', fields' warnings)."""
        plate_id = plate.name or self.dataset_id
        well_paths = [join_path(group.path, well.path) for well in wells]
        field_paths: list[str] = []
        placements: list[_Placement] = []
        for well, node in zip(wells, self.reader.groups(well_paths), strict=True):
            if node is None:
                notes[0].append(
                    f"{self._attrs_location(join_path(group.path, well.path))}: "
                    "well listed in the plate has no metadata; skipped"
                )
                continue
            try:
                fields = ngff.parse_well_images(ngff.ngff_attributes(node.attributes)[0])
            except ValueError as error:
                raise MetadataError(
                    self._attrs_location(node.path), f"invalid well metadata: {error}"
                ) from error
            well_id, row_name, column_name = self._well_id(well, group.path, notes[0])
            for field in fields:
                field_paths.append(join_path(node.path, field))
                placements.append(
                    _Placement(
                        plate_id=plate_id,
                        well_id=well_id,
                        row_name=row_name,
                        column_name=column_name,
                        site_id=field,
                    )
                )
        images: list[_ImageGroup] = []
        for path, placement, node in zip(
            field_paths, placements, self.reader.groups(field_paths), strict=True
        ):
            if node is None:
                notes[1].append(
                    f"{self._attrs_location(path)}: "
                    "field listed in the well has no metadata; skipped"
                )
                continue
            block = ngff.ngff_attributes(node.attributes)[0]
            if "multiscales" not in block:
                notes[1].append(
                    f"{self._attrs_location(path)}: field has no 'multiscales'; skipped"
                )
                continue
            images.append(_ImageGroup(node=node, ngff=block, placement=placement))
        return images

    def _well_id(
        self, well: ngff.PlateWell, plate_path: str, notes: list[str]
    ) -> tuple[str | None, str | None, str | None]:
        """``(well_id, row name, column name)``; the names only when rows are numbered.

        A plate whose rows are named by numbers (bioformats2raw: ``12/21``) gets
        its well id from the row's index in ``rows`` (0 → ``A``) and the column's
        index in ``columns``, and keeps the written names for ``well_row``/``well_column``.
        """
        if well.row.isascii() and well.row.isdigit() and well.row_index is not None:
            if well.column_index is not None:
                column_index = well.column_index
            elif well.column.isascii() and well.column.isdigit() and int(well.column) > 0:
                column_index = int(well.column) - 1
            else:
                column_index = None
            if column_index is not None:
                return well_name(well.row_index, column_index), well.row, well.column
        for name in (f"{well.row}{well.column}", well.path):
            try:
                return normalize_well_id(name), None, None
            except ValueError:
                continue
        notes.append(
            f"{self._attrs_location(plate_path)}: well '{well.path}' does not follow the "
            "<row letters><column> naming; its well_id is left empty"
        )
        return None, None, None

    def _labels(self, images: Sequence[_ImageGroup]) -> list[_ImageGroup]:
        """The label images (``<image>/labels/<name>``) of ``images``.

        Nothing in an image's metadata says it has labels, so each ``labels`` group
        is a probe. Local stores and consolidated metadata look up every image.
        Remote stores without consolidated metadata, where each probe is a request,
        probe the scan's first image and the others only when it has labels: a
        plate's labels are written for all of its fields, and a remote plate of N
        fields without labels costs one request, not N (labels under other fields
        only are then not found; consolidate the metadata to find them).
        """
        paths = [join_path(image.node.path, "labels") for image in images]
        every = self.reader.consolidated is not None or isinstance(self.reader.store, LocalStore)
        if every or self._remote_labels:
            nodes = self.reader.groups(paths)
        elif self._remote_labels is None and paths:
            nodes = self.reader.groups(paths[:1])
            self._remote_labels = nodes[0] is not None
            if self._remote_labels:
                nodes += self.reader.groups(paths[1:])
        else:
            nodes = []
        label_paths: list[str] = []
        parents: list[_ImageGroup] = []
        for image, node in zip(images, nodes, strict=False):
            if node is None:
                continue
            try:
                names = ngff.label_names(node.attributes)
            except ValueError as error:
                self.notes["labels"].append(
                    f"{self._attrs_location(node.path)}: invalid labels metadata ({error}); "
                    "labels skipped"
                )
                continue
            for name in names:
                label_paths.append(join_path(node.path, name))
                parents.append(image)
        labels: list[_ImageGroup] = []
        for path, parent, node in zip(
            label_paths, parents, self.reader.groups(label_paths), strict=True
        ):
            block = ngff.ngff_attributes(node.attributes)[0] if node is not None else {}
            if node is None or "multiscales" not in block:
                self.notes["labels"].append(
                    f"{self._attrs_location(path)}: label listed in 'labels' has no "
                    "'multiscales'; skipped"
                )
                continue
            labels.append(
                _ImageGroup(node=node, ngff=block, placement=parent.placement, is_label=True)
            )
        return labels

    # -- assets ------------------------------------------------------------
    def _image_assets(self, images: Sequence[_ImageGroup]) -> list[ImageAsset]:
        parsed: list[tuple[_ImageGroup, ngff.Multiscale, str]] = []
        array_paths: list[str] = []
        for image in images:
            try:
                multiscale = ngff.parse_multiscale(image.ngff)
            except ValueError as error:
                raise MetadataError(
                    self._attrs_location(image.node.path),
                    f"invalid multiscales: {error}",
                ) from error
            metadata_json = self._metadata_json(image.node.attributes)
            parsed.append((image, multiscale, metadata_json))
            array_paths.extend(join_path(image.node.path, p) for p in multiscale.dataset_paths)
        arrays = iter(self.reader.arrays(array_paths))
        assets: list[ImageAsset] = []
        for image, multiscale, metadata_json in parsed:
            channels = ngff.channel_labels(image.ngff)
            image_id = image_id_for(self.dataset_id, image.node.path)
            for level, dataset_path in enumerate(multiscale.dataset_paths):
                node = next(arrays)
                path = join_path(image.node.path, dataset_path)
                if node is None:
                    self.notes["assets"].append(
                        f"{self.reader.where(path)}: multiscale level {level} "
                        "has no array metadata; skipped"
                    )
                    continue
                assets.append(
                    self._ngff_asset(
                        node,
                        image,
                        multiscale,
                        level,
                        image_id,
                        channels,
                        metadata_json,
                    )
                )
        return assets

    def _ngff_asset(
        self,
        node: Node,
        image: _ImageGroup,
        multiscale: ngff.Multiscale,
        level: int,
        image_id: str,
        channels: tuple[str, ...] | None,
        metadata_json: str,
    ) -> ImageAsset:
        array = node.array
        assert array is not None
        names: Sequence[str] | None = ngff.axis_names(multiscale)
        if len(names) != len(array.shape):
            self.notes["assets"].append(
                f"{self.reader.where(node.path)}: {len(array.shape)}-D array but "
                f"{len(names)} NGFF axes; axis names taken from the array"
            )
            names = array.dimension_names
        size_x, size_y, size_z, unit = ngff.physical_sizes(multiscale, level)
        return self._asset(
            node,
            image_id=image_id,
            dimension_names=names,
            channel_names=channels,
            multiscale_level=level,
            placement=image.placement,
            physical=(size_x, size_y, size_z, unit),
            metadata_json=metadata_json,
            is_label=image.is_label,
        )

    def _bare_asset(self, node: Node) -> ImageAsset:
        assert node.array is not None
        return self._asset(
            node,
            image_id=image_id_for(self.dataset_id, node.path),
            dimension_names=node.array.dimension_names,
            channel_names=None,
            multiscale_level=0,
            placement=_Placement(),
            physical=(None, None, None, None),
            metadata_json=self._metadata_json(node.attributes),
        )

    def _metadata_json(self, attributes: Mapping[str, Any]) -> str:
        """Compact JSON of an attributes document, encoded once per parsed document.

        Nodes read from identical documents share one parsed object (see
        :class:`NodeReader`), so a plate's fields share one string too.
        """
        found = self._json_texts.get(id(attributes))
        if found is None or found[0] is not attributes:
            found = (attributes, json.dumps(attributes, separators=(",", ":")))
            self._json_texts[id(attributes)] = found
        return found[1]

    def _asset(
        self,
        node: Node,
        *,
        image_id: str,
        dimension_names: Sequence[str] | None,
        channel_names: tuple[str, ...] | None,
        multiscale_level: int,
        placement: _Placement,
        physical: tuple[float | None, float | None, float | None, str | None],
        metadata_json: str,
        is_label: bool = False,
    ) -> ImageAsset:
        array = node.array
        assert array is not None
        names = tuple(dimension_names) if dimension_names is not None else None
        self.asset_arrays.append(array)
        return ImageAsset(
            dataset_id=self.dataset_id,
            image_id=image_id,
            array_path=node.path,
            uri=self.store.uri,
            format="zarr",
            storage_variant=self.variant,
            shape=array.shape,
            chunks=array.chunks,
            shards=array.shards,
            dtype=array.dtype,
            itemsize=array.itemsize,
            dimension_names=names,
            axes=axes_label(names),
            channel_names=channel_names,
            multiscale_level=multiscale_level,
            plate_id=placement.plate_id,
            well_id=placement.well_id,
            row_name=placement.row_name,
            column_name=placement.column_name,
            site_id=placement.site_id,
            is_label=is_label,
            physical_size_x=physical[0],
            physical_size_y=physical[1],
            physical_size_z=physical[2],
            physical_unit=physical[3],
            codecs=array.codecs,
            metadata_json=metadata_json,
            chunk_key_encoding=array.key_encoding,
        )


def scan_zarr(
    store: Store,
    root_docs: Mapping[str, bytes | None],
    dataset_id: str,
    options: ScanOptions,
) -> ScanResult:
    """Scan a Zarr store whose root documents were already read (every batch, collected)."""
    return stream_zarr(store, root_docs, dataset_id, options).collect()


def stream_zarr(
    store: Store,
    root_docs: Mapping[str, bytes | None],
    dataset_id: str,
    options: ScanOptions,
    batch_wells: int = PLATE_BATCH_WELLS,
) -> ScanStream:
    """Scan a Zarr store a batch of arrays at a time (a plate: ``batch_wells`` wells).

    The cyclic garbage collector is paused while each batch is read: a scan
    allocates many small containers and frees none of them, so collections would
    only re-walk them.
    """
    return _Scan(store, root_docs, dataset_id, options, batch_wells).stream()


def _is_zarr(probe: Probe) -> bool:
    return probe.is_dir and zarr_format_of(probe.root_documents) is not None


def _read_zarr(probe: Probe) -> ScanResult:
    return scan_zarr(probe.store, probe.root_documents, probe.dataset_id, probe.options)


def _stream_zarr(probe: Probe) -> ScanStream:
    return stream_zarr(probe.store, probe.root_documents, probe.dataset_id, probe.options)


#: Zarr v2/v3 stores: OME-NGFF images and HCS plates, plain arrays and groups.
ZARR = FormatReader(name="zarr", can_read=_is_zarr, read=_read_zarr, stream=_stream_zarr)
