"""Turn the planes of a file-set plate into images: one array per (well, site).

Shared by the folder scan (:mod:`.file_set`) and the LoadData CSV scan
(:mod:`.load_data`): both hand over :class:`PlaneName` s (a file's key relative to
the dataset root and its place: well, site, channel, z, t), and get back one
:class:`ImageAsset` per image with shape ``(c, z, y, x)`` (``(t, c, z, y, x)``
with several time points) and one chunk per strip or tile of every file.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from iceberg_bioimage.exceptions import InvalidNameError, MetadataError
from iceberg_bioimage.formats.tiff.headers import PlaneHeader, read_plane_headers
from iceberg_bioimage.io.storage import Store
from iceberg_bioimage.models import ChunkKeyEncoding, ImageAsset, ScanResult, image_id_for
from iceberg_bioimage.models.instruments import PlaneName
from iceberg_bioimage.models.keys import row_index, split_well_id
from iceberg_bioimage.models.names import check_dataset_id

Place = tuple[int, int, int]  # (t index, channel index, z index)


@dataclass(frozen=True, kw_only=True)
class PlatePlanes:
    """Every plane of one plate, with the channel order the caller decided."""

    plate_id: str
    planes: Sequence[PlaneName]
    channels: Sequence[str]
    channel_names: Sequence[str]
    warnings: list[str] = field(default_factory=list)
    #: File sizes from a listing (key → bytes), when one was made.
    sizes: Mapping[str, int] | None = None


def plate_dataset_id(given: str | None, plate_id: str, subject: str) -> str:
    """The dataset id of a plate: ``given``, else the plate id; checked by the one rule."""
    if given is not None:
        return check_dataset_id(given)
    try:
        return check_dataset_id(plate_id)
    except InvalidNameError as error:
        raise InvalidNameError(
            error.subject,
            f"{error.problem}; it is the plate id of {subject}: pass a dataset id "
            "(--dataset-id, dataset_id=)",
        ) from None


class SeveralPlatesError(MetadataError):
    """A folder or LoadData CSV holds several plates and no plate was chosen.

    ``plates`` names them (sorted); ``ingest`` registers one dataset per plate.
    """

    def __init__(self, subject: str, problem: str, *, plates: Sequence[str] = ()) -> None:
        super().__init__(subject, problem)
        self.plates = tuple(plates)


def pick_plate(subject: str, found: Sequence[str], wanted: str | None) -> str:
    """The one plate to scan among ``found``; refuse (naming them) when it is ambiguous."""
    plates = sorted(set(found))
    if wanted is not None:
        if wanted not in plates:
            raise MetadataError(
                subject, f"no plate {wanted!r} here; its files name {', '.join(plates)}"
            )
        return wanted
    if len(plates) > 1:
        raise SeveralPlatesError(
            subject,
            f"holds {len(plates)} plates ({', '.join(plates)}): pass --plate-id / plate_id= "
            "to scan one (ingest registers one dataset per plate)",
            plates=plates,
        )
    return plates[0]


def _site_key(site: str) -> tuple[int, int | str]:
    return (0, int(site)) if site.isdigit() else (1, site)


def _group(
    store: Store, plate: PlatePlanes
) -> tuple[dict[tuple[str, str], dict[Place, str]], list[int], list[int]]:
    channel_index = {token: i for i, token in enumerate(plate.channels)}
    ts = sorted({p.t for p in plate.planes})
    zs = sorted({p.z for p in plate.planes})
    t_index = {t: i for i, t in enumerate(ts)}
    z_index = {z: i for i, z in enumerate(zs)}
    images: dict[tuple[str, str], dict[Place, str]] = {}
    for plane in plate.planes:
        if plane.well_id is None:
            raise MetadataError(store.location(plane.key), "the file name gives no well")
        place = (t_index[plane.t], channel_index[plane.channel], z_index[plane.z])
        files = images.setdefault((plane.well_id, plane.site), {})
        if place in files:
            raise MetadataError(
                store.location(plane.key),
                f"same well {plane.well_id}, site {plane.site}, channel {plane.channel}, "
                f"z {plane.z}, t {plane.t} as {files[place]}",
            )
        files[place] = plane.key
    return images, ts, zs


def _image_order(item: tuple[tuple[str, str], object]) -> tuple[int, int, tuple[int, int | str]]:
    (well, site), _ = item
    row, column = split_well_id(well)
    return (row_index(row), int(column), _site_key(site))


def scan_plate_files(
    store: Store,
    *,
    dataset_id: str,
    uri: str,
    plate: PlatePlanes,
) -> ScanResult:
    """Read every plane's TIFF header (in threads) and build one array per image."""
    if len(plate.channel_names) != len(plate.channels):
        raise MetadataError(
            uri,
            f"{len(plate.channel_names)} channel names given for {len(plate.channels)} "
            f"channels ({', '.join(plate.channels)})",
        )
    images, ts, zs = _group(store, plate)
    headers = read_plane_headers(store, sorted(p.key for p in plate.planes), plate.sizes)
    warnings = list(plate.warnings)
    warnings.extend(h for h in headers.values() if isinstance(h, str))
    assets: list[ImageAsset] = []
    missing = 0
    shape_tcz = (len(ts), len(plate.channels), len(zs))
    for (well, site), files in sorted(images.items(), key=_image_order):
        usable = {p: k for p, k in files.items() if isinstance(headers.get(k), PlaneHeader)}
        if not usable:
            warnings.append(f"{uri}: well {well} site {site}: no readable file; image skipped")
            continue
        # The files of one image must agree on plane size and dtype; each keeps its
        # own compression and strip/tile layout (an ArrayScan site: two PackBits
        # channels in 16-row strips, one raw channel in one strip).
        planes = {headers[k].plane for k in usable.values()}  # type: ignore[union-attr]
        if len(planes) > 1:
            warnings.append(
                f"{uri}: well {well} site {site}: its files differ in size or dtype "
                f"({', '.join(sorted(_describe(p) for p in planes))}); image skipped"
            )
            continue
        missing += len(ts) * len(plate.channels) * len(zs) - len(usable)
        assets.append(
            _asset(dataset_id, uri, plate, well, site, usable, headers, shape_tcz)  # type: ignore[arg-type]
        )
    if missing:
        warnings.append(f"{uri}: {missing} planes have no readable file; their chunks are absent")
    if not assets:
        reason = f" ({warnings[0]})" if warnings else ""
        raise MetadataError(uri, f"no readable image files{reason}")
    return ScanResult(
        dataset_id=dataset_id,
        uri=uri,
        format="tiff",
        storage_variant="tiff-files",
        image_assets=tuple(assets),
        scanned_at=datetime.now(UTC),
        warnings=tuple(warnings),
    )


def _describe(plane: tuple[int, int, str]) -> str:
    height, width, dtype = plane
    return f"{width}x{height} {dtype}"


def _plane_facts(
    files: Sequence[str | None], headers: dict[str, PlaneHeader]
) -> tuple[tuple[tuple[int, int], ...] | None, str | None, str | None]:
    """``(plane_chunks, codecs, planes metadata)`` of an image whose files differ.

    ``(None, codec, None)`` when every file has the first file's layout and codec.
    Otherwise ``plane_chunks`` gives each plane its file's strip/tile shape (when the
    layouts differ), ``codecs`` lists the distinct codecs in plane order joined by
    ``|``, and the metadata names each plane's file, chunk shape and codec, so a
    reader of the tables decodes every file with its own layout.
    """
    present = [headers[k] for k in files if k is not None]
    first = present[0]
    layouts = {h.chunks for h in present}
    codecs = list(dict.fromkeys(h.codec for h in present))
    if len(layouts) == 1 and len(codecs) == 1:
        return None, first.codec, None
    described = [
        {"file": key, "chunks": list(headers[key].chunks), "codec": headers[key].codec}
        if key is not None
        else None
        for key in files
    ]
    plane_chunks = (
        tuple(headers[k].chunks if k is not None else first.chunks for k in files)
        if len(layouts) > 1
        else None
    )
    return plane_chunks, "|".join(codecs), json.dumps(described, separators=(",", ":"))


def _asset(
    dataset_id: str,
    uri: str,
    plate: PlatePlanes,
    well: str,
    site: str,
    files: dict[Place, str],
    headers: dict[str, PlaneHeader],
    shape_tcz: tuple[int, int, int],
) -> ImageAsset:
    n_t, n_c, n_z = shape_tcz
    placed = [files.get(p) for p in itertools.product(range(n_t), range(n_c), range(n_z))]
    first = headers[next(k for k in placed if k is not None)]
    plane_chunks, codecs, planes_json = _plane_facts(placed, headers)
    offsets: list[int] = []
    lengths: list[int] = []
    keys: list[str] = []
    for key in placed:
        if key is not None:
            header = headers[key]
            offsets.extend(header.byte_offsets)
            lengths.extend(header.byte_lengths)
            keys.extend((key,) * len(header.byte_offsets))
        else:  # an absent plane: the first file's layout, every chunk absent
            count = len(first.byte_offsets)
            offsets.extend((-1,) * count)
            lengths.extend((-1,) * count)
            keys.extend(("",) * count)
    lead = (n_t,) if n_t > 1 else ()
    axes = ("t" if n_t > 1 else "") + "czyx"
    row, column = split_well_id(well)
    image_path = f"{row}/{int(column)}/{site}"
    # The files of each plane (plane order, null when absent): an Image table that
    # names files instead of wells (CellProfiler without a Metadata module) is
    # matched to this image by them.
    names = json.dumps(placed, separators=(",", ":"))
    metadata = (
        f'{{"files":{len(files)},"file_names":{names}'
        + (f',"planes":{planes_json}' if planes_json else "")
        + "}"
    )
    return ImageAsset(
        dataset_id=dataset_id,
        image_id=image_id_for(dataset_id, image_path),
        array_path=f"{image_path}/0",
        uri=uri,
        format="tiff",
        storage_variant="tiff-files",
        shape=(*lead, n_c, n_z, first.height, first.width),
        chunks=(*((1,) if lead else ()), 1, 1, *first.chunks),
        dtype=first.dtype,
        itemsize=first.itemsize,
        dimension_names=tuple(axes),
        axes=axes,
        channel_names=tuple(plate.channel_names),
        multiscale_level=0,
        plate_id=plate.plate_id,
        well_id=well,
        site_id=site,
        physical_size_x=first.physical_size_x,
        physical_size_y=first.physical_size_y,
        physical_unit="micrometer" if first.physical_size_x is not None else None,
        codecs=codecs,
        metadata_json=metadata,
        chunk_key_encoding=ChunkKeyEncoding(name="fixed", fixed_key=""),
        chunk_byte_offsets=tuple(offsets),
        chunk_byte_lengths=tuple(lengths),
        chunk_keys=tuple(keys),
        plane_chunks=plane_chunks,
    )
