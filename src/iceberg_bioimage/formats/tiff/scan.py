"""Scan a TIFF file (OME-TIFF, ImageJ or plain): every series and pyramid level.

Each series level is one array; its tiles or strips become chunks with the real
byte ranges from the IFDs. Shapes and axes are kept unsqueezed, as tifffile
reports them with ``squeeze=False``, so every OME-TIFF has the same rank.

``format``/``storage_variant`` are ``ome-tiff`` only when the file carries
OME-XML; ImageJ and plain TIFFs are ``tiff``. Channel names: see
:mod:`~iceberg_bioimage.formats.tiff.channels`. A multi-file OME-TIFF is read
as one image (:mod:`~iceberg_bioimage.formats.tiff.multifile`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, Literal

import tifffile

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.formats.registry import FormatReader, Probe
from iceberg_bioimage.formats.tiff.channels import channel_names
from iceberg_bioimage.formats.tiff.guard import check_ifd_chain, open_tiff
from iceberg_bioimage.formats.tiff.multifile import (
    MultiFile,
    is_ome_xml,
    local_file,
    plan_from_companion,
    plan_from_tiff,
)
from iceberg_bioimage.formats.tiff.ome_xml import OmeDocument, OmeImage, parse_ome_xml, valid_size
from iceberg_bioimage.io.storage import Store
from iceberg_bioimage.models import (
    ChunkKeyEncoding,
    ImageAsset,
    ScanResult,
    chunk_grid_shape,
    image_id_for,
    normalize_unit,
)
from iceberg_bioimage.models.limits import INT64_MAX

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def is_tiff(head: bytes) -> bool:
    """Whether the first bytes of a file are a TIFF or BigTIFF header."""
    return head[:4] in TIFF_MAGIC


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _tifffile_warnings() -> Iterator[list[str]]:
    """Collect what tifffile logs (it reports damaged files through logging)."""
    logger = logging.getLogger("tifffile")
    handler = _Collect()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def unsqueezed_chunks(
    squeezed: Sequence[int],
    unsqueezed: Sequence[int],
    page_shape: Sequence[int],
    page_chunks: Sequence[int],
) -> tuple[int, ...] | None:
    """Chunk shape over the unsqueezed series shape, or ``None`` if it does not fit.

    Pages tile the trailing ``page_shape`` dims; leading dims hold one page
    per index. Size-1 dims that tifffile squeezes get chunk size 1.
    """
    if len(page_shape) > len(squeezed) or tuple(
        squeezed[len(squeezed) - len(page_shape) :]
    ) != tuple(page_shape):
        return None
    chunks_squeezed = (1,) * (len(squeezed) - len(page_shape)) + tuple(page_chunks)
    out: list[int] = []
    j = len(squeezed) - 1
    for size in reversed(unsqueezed):
        if j >= 0 and size == squeezed[j]:
            out.append(chunks_squeezed[j])
            j -= 1
        elif size == 1:
            out.append(1)
        else:
            return None
    return tuple(reversed(out)) if j < 0 else None


def _ome_image(
    document: OmeDocument | None,
    series: tifffile.TiffPageSeries,
    index: int,
    count: int,
) -> OmeImage | None:
    if document is None:
        return None
    if len(document.images) == count:
        return document.images[index]
    named = [image for image in document.images if image.name and image.name == series.name]
    return named[0] if len(named) == 1 else None


class _TiffScan:
    def __init__(
        self,
        store: Store,
        tif: tifffile.TiffFile,
        dataset_id: str,
        file_size: int,
        folder: str | None = None,
    ) -> None:
        self.folder = folder  # set for a multi-file OME-TIFF: keys relative to it
        self._sizes: dict[str, int] = {}
        self.store = store
        self.tif = tif
        self.dataset_id = dataset_id
        self.file_size = file_size
        self.file_name = store.name
        self.warnings: list[str] = []
        self.kind: Literal["ome-tiff", "tiff"] = "ome-tiff" if tif.is_ome else "tiff"
        self._noted: set[str] = set()

    def _warn_once(self, message: str) -> None:
        if message not in self._noted:
            self._noted.add(message)
            self.warnings.append(message)

    def assets(self) -> list[ImageAsset]:
        document = None
        if self.tif.is_ome and self.tif.ome_metadata:
            try:
                document = parse_ome_xml(self.tif.ome_metadata)
            except ValueError as error:
                self.warnings.append(f"{self.store.uri}: {error}; OME metadata ignored")
        series_list = list(self.tif.series)
        assets: list[ImageAsset] = []
        for index, series in enumerate(series_list):
            image = _ome_image(document, series, index, len(series_list))
            placement = document.placements.get(image.id) if document and image else None
            levels = list(series.levels)
            base_shape = levels[0].get_shape(False)
            for level_index, level in enumerate(levels):
                asset = self._asset(index, level_index, series, level, image, base_shape)
                if asset is not None and placement is not None:
                    asset = _placed(asset, placement.plate_id, placement.well_id, placement.site_id)
                if asset is not None:
                    assets.append(asset)
        return assets

    def _page_file(self, page: Any) -> tuple[str, int]:
        """``(chunk key, file size)`` of the file holding a page of a multi-file image."""
        assert self.folder is not None
        path = page.parent.filehandle.path
        if path not in self._sizes:
            self._sizes[path] = os.path.getsize(path)
        return os.path.relpath(path, self.folder).replace(os.sep, "/"), self._sizes[path]

    def _byte_ranges(
        self, where: str, pages: Sequence[Any]
    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...] | None] | None:
        offsets: list[int] = []
        lengths: list[int] = []
        keys: list[str] = []
        past_end = False
        for page in pages:
            if page is None:
                self.warnings.append(
                    f"{where}: pages are missing (truncated file or missing file?); array skipped"
                )
                return None
            size = self.file_size
            if self.folder is not None:
                key, size = self._page_file(page)
                keys.extend([key] * len(page.dataoffsets))
            spans = zip(page.dataoffsets, page.databytecounts, strict=True)
            past_end = past_end or any(o + n > size for o, n in spans)
            offsets.extend(page.dataoffsets)
            lengths.extend(page.databytecounts)
        if past_end:
            self.warnings.append(
                f"{where}: image data extends past the end of the file (truncated?); array skipped"
            )
            return None
        return (
            tuple(o if n > 0 else -1 for o, n in zip(offsets, lengths, strict=True)),
            tuple(n if n > 0 else -1 for n in lengths),
            tuple(keys) if self.folder is not None else None,
        )

    def _asset(
        self,
        index: int,
        level_index: int,
        series: tifffile.TiffPageSeries,
        level: tifffile.TiffPageSeries,
        image: OmeImage | None,
        base_shape: tuple[int, ...],
    ) -> ImageAsset | None:
        where = f"{self.store.uri} series {index} level {level_index}"
        pages = list(level.pages)
        ranges = self._byte_ranges(where, pages)
        if ranges is None:
            return None
        keyframe = pages[0].keyframe
        shape = tuple(level.get_shape(False))
        if math.prod(shape) * level.dtype.itemsize > INT64_MAX:
            self.warnings.append(
                f"{where}: shape {shape} is too large (its size overflows int64); array skipped"
            )
            return None
        axes = level.get_axes(False).lower()
        chunks = unsqueezed_chunks(level.shape, shape, keyframe.shape, keyframe.chunks)
        if chunks is None or math.prod(chunk_grid_shape(shape, chunks)) != len(ranges[0]):
            self.warnings.append(
                f"{where}: tile layout does not match the series shape; "
                "chunks are whole planes without byte ranges"
            )
            chunks = unsqueezed_chunks(level.shape, shape, keyframe.shape, keyframe.shape) or shape
            ranges = None
        size_x, size_y, size_z, unit = self._physical(image, shape, base_shape, axes)
        if image is not None and image.invalid_sizes:
            self._warn_once(
                f"{self.store.uri} series {index}: invalid physical size "
                f"{', '.join(image.invalid_sizes)} (must be a finite positive number); left null"
            )
        return ImageAsset(
            dataset_id=self.dataset_id,
            image_id=image_id_for(self.dataset_id, str(index)),
            array_path=f"{index}/{level_index}",
            uri=self.store.uri,
            format=self.kind,
            storage_variant=self.kind,
            shape=shape,
            chunks=chunks,
            dtype=level.dtype.name,
            itemsize=level.dtype.itemsize,
            dimension_names=tuple(axes),
            axes=axes,
            channel_names=self._channel_names(index, image, shape, axes),
            multiscale_level=level_index,
            physical_size_x=size_x,
            physical_size_y=size_y,
            physical_size_z=size_z,
            physical_unit=unit,
            codecs=codec_name(keyframe),
            metadata_json=self._metadata_json(series, image),
            chunk_key_encoding=ChunkKeyEncoding(name="fixed", fixed_key=self.file_name),
            chunk_byte_offsets=ranges[0] if ranges else None,
            chunk_byte_lengths=ranges[1] if ranges else None,
            chunk_keys=ranges[2] if ranges else None,
        )

    def _channel_names(
        self, index: int, image: OmeImage | None, shape: tuple[int, ...], axes: str
    ) -> tuple[str, ...] | None:
        """Channel names that match the ``c`` axis (one name when there is none)."""
        names, problem = channel_names(self.tif, image, shape, axes)
        if problem:
            self._warn_once(f"{self.store.uri} series {index}: {problem}; channel names left null")
        return names

    def _physical(
        self,
        image: OmeImage | None,
        shape: tuple[int, ...],
        base_shape: tuple[int, ...],
        axes: str,
    ) -> tuple[float | None, float | None, float | None, str | None]:
        if image is not None:
            x, y, z, unit = (
                image.physical_size_x,
                image.physical_size_y,
                image.physical_size_z,
                image.physical_unit,
            )
        else:
            x, y, z, unit = self._imagej_physical()
        factors = {a: base_shape[i] / shape[i] if shape[i] else 1.0 for i, a in enumerate(axes)}
        return (
            x * factors.get("x", 1.0) if x is not None else None,
            y * factors.get("y", 1.0) if y is not None else None,
            z * factors.get("z", 1.0) if z is not None else None,
            unit,
        )

    def _imagej_physical(
        self,
    ) -> tuple[float | None, float | None, float | None, str | None]:
        meta = self.tif.imagej_metadata
        if not meta:
            return None, None, None, None
        tags = self.tif.pages.first.tags
        sizes = []
        for name in ("XResolution", "YResolution"):
            value = tags[name].value if name in tags else None
            ok = isinstance(value, tuple) and len(value) == 2 and value[0]
            sizes.append(valid_size(_float(value[1] / value[0])) if ok else None)
        unit = meta.get("unit")
        spacing = _float(meta.get("spacing"))
        if meta.get("spacing") is not None and valid_size(spacing) is None:
            self._warn_once(
                f"{self.store.uri}: invalid ImageJ spacing {meta.get('spacing')!r} "
                "(must be a finite positive number); physical_size_z left null"
            )
        return (
            sizes[0],
            sizes[1],
            valid_size(spacing),
            normalize_unit(unit) if isinstance(unit, str) else None,
        )

    def _metadata_json(self, series: tifffile.TiffPageSeries, image: OmeImage | None) -> str:
        doc: dict[str, Any] = {"series_name": series.name, "series_kind": series.kind}
        if image is not None:
            doc["ome_image_id"] = image.id
            doc["ome_pixels"] = image.pixels
        elif self.tif.imagej_metadata:
            doc["imagej"] = {
                k: v
                for k, v in self.tif.imagej_metadata.items()
                if isinstance(v, str | int | float | bool)
            }
        return json.dumps(doc, separators=(",", ":"))


def _float(value: Any) -> float | None:
    """A number from ImageJ metadata as a float; ``None`` when it is not one."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def codec_name(page: Any) -> str:
    """The codec of a TIFF page as written in ``codecs``: ``zlib``, ``lzw,predictor:horizontal``."""
    compression = getattr(page, "compression", None)
    if type(compression) is int:  # the default (no tag) is a plain 1
        with suppress(ValueError):
            compression = tifffile.COMPRESSION(compression)
    name = getattr(compression, "name", str(compression)).lower()
    predictor = getattr(page, "predictor", None)
    if predictor is not None and int(predictor) > 1:
        return f"{name},predictor:{getattr(predictor, 'name', predictor)}".lower()
    return name


def _placed(asset: ImageAsset, plate_id: str, well_id: str, site_id: str) -> ImageAsset:
    from dataclasses import replace

    return replace(asset, plate_id=plate_id, well_id=well_id, site_id=site_id)


def _scan_multifile(
    store: Store, plan: MultiFile, dataset_id: str
) -> tuple[_TiffScan, list[ImageAsset]]:
    """Scan the series of a multi-file OME-TIFF, opened by path so tifffile reads every file."""
    for path in {plan.tiff_path, *plan.files}:
        with open(path, "rb") as handle:
            check_ifd_chain(handle, os.fstat(handle.fileno()).st_size, path, store.limits)
    with tifffile.TiffFile(plan.tiff_path, omexml=plan.omexml) as tif:
        scan = _TiffScan(store, tif, dataset_id, os.path.getsize(plan.tiff_path), plan.folder)
        scan.warnings.extend(plan.warnings)
        return scan, scan.assets()


def scan_tiff(store: Store, dataset_id: str) -> ScanResult:
    """Scan a TIFF file; damaged arrays are dropped with a warning, never guessed.

    A local OME-TIFF whose OME-XML names other files (or a ``BinaryOnly`` one
    pointing at a companion) is read as one multi-file image.
    """
    local = local_file(store)
    with store.open() as handle, _tifffile_warnings() as logged:
        file_size = handle.seek(0, 2)
        handle.seek(0)
        try:
            with open_tiff(handle, store.uri, store.limits, name=store.name) as tif:
                plan = None
                if local is not None and tif.is_ome and tif.ome_metadata:
                    plan = plan_from_tiff(local, tif.ome_metadata)
                if plan is None:
                    scan = _TiffScan(store, tif, dataset_id, file_size)
                    assets = scan.assets()
            if plan is not None:
                scan, assets = _scan_multifile(store, plan, dataset_id)
        except MetadataError:
            raise
        except Exception as error:  # tifffile raises many types on damaged files
            raise MetadataError(store.uri, f"unreadable TIFF: {error}") from error
    return _result(store, dataset_id, scan, assets, logged)


def scan_ome_companion(store: Store, dataset_id: str) -> ScanResult:
    """Scan a ``.companion.ome`` OME-XML document and the TIFF files it references."""
    local = local_file(store)
    if local is None:
        raise MetadataError(store.uri, "an OME-XML companion can only be scanned on a local disk")
    with store.open() as handle:
        text = handle.read(store.limits.max_metadata_bytes + 1).decode("utf-8", "replace")
    if len(text) > store.limits.max_metadata_bytes:
        raise MetadataError(store.uri, "OME-XML companion is larger than the metadata limit")
    plan = plan_from_companion(local, text)
    with _tifffile_warnings() as logged:
        try:
            scan, assets = _scan_multifile(store, plan, dataset_id)
        except MetadataError:
            raise
        except Exception as error:  # tifffile raises many types on damaged files
            raise MetadataError(store.uri, f"unreadable multi-file OME-TIFF: {error}") from error
    return _result(store, dataset_id, scan, assets, logged)


def _result(
    store: Store,
    dataset_id: str,
    scan: _TiffScan,
    assets: list[ImageAsset],
    logged: list[str],
) -> ScanResult:
    warnings = [f"{store.uri}: tifffile: {message}" for message in dict.fromkeys(logged)]
    warnings.extend(scan.warnings)
    if not assets:
        raise MetadataError(
            store.uri,
            "no intact image data in this TIFF" + (f" ({warnings[0]})" if warnings else ""),
        )
    return ScanResult(
        dataset_id=dataset_id,
        uri=store.uri,
        format=scan.kind,
        storage_variant=scan.kind,
        image_assets=tuple(assets),
        scanned_at=datetime.now(UTC),
        warnings=tuple(warnings),
    )


def _is_tiff(probe: Probe) -> bool:
    return not probe.is_dir and is_tiff(probe.head)


def _is_companion(probe: Probe) -> bool:
    return not probe.is_dir and is_ome_xml(probe.head)


#: TIFF files: OME-TIFF (single- or multi-file), ImageJ and plain TIFF.
TIFF = FormatReader(
    name="tiff", can_read=_is_tiff, read=lambda probe: scan_tiff(probe.store, probe.dataset_id)
)
#: ``.companion.ome`` OME-XML documents and the TIFF files they name.
OME_COMPANION = FormatReader(
    name="ome-companion",
    can_read=_is_companion,
    read=lambda probe: scan_ome_companion(probe.store, probe.dataset_id),
)
