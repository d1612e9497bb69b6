"""Scan a folder of single-image TIFFs named by an instrument's convention as one plate.

One listing of the folder (no per-file stat beyond what the listing gives); file
names are matched against the chosen preset, a custom ``pattern``, or, when
neither is given, every preset (exactly one must match most files). Thumbnails,
non-TIFF files and TIFFs the convention does not name are counted in a warning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.formats.file_set.plate_files import (
    PlatePlanes,
    pick_plate,
    plate_dataset_id,
    scan_plate_files,
)
from iceberg_bioimage.formats.registry import FormatReader, Probe
from iceberg_bioimage.io.storage import Store
from iceberg_bioimage.models import ScanResult
from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.instruments import (
    PRESETS,
    InstrumentPreset,
    PlaneName,
    channel_order,
    custom_pattern,
    parse_file_name,
    plate_columns_for,
    plate_from_folder,
)
from iceberg_bioimage.runtime import gc_paused

TIFF_SUFFIXES = (".tif", ".tiff")
_THUMBNAIL = re.compile(r"(?i)_thumb|thumbnail")
_DETECTION_SAMPLE = 512


def tiff_keys(listing: Mapping[str, int]) -> list[str]:
    """The TIFF files of a listing (by name), thumbnails included, sorted."""
    return sorted(key for key in listing if key.lower().endswith(TIFF_SUFFIXES))


def _choose(
    subject: str, keys: list[str], options: FileSetOptions
) -> tuple[InstrumentPreset | None, re.Pattern[str], str]:
    """The preset (or custom pattern) to read names with, and a label for messages."""
    if options.pattern is not None:
        return None, custom_pattern(options.pattern), "--pattern"
    if options.instrument is not None:
        preset = PRESETS.get(options.instrument.lower())
        if preset is None:
            raise MetadataError(
                f"instrument {options.instrument!r}",
                f"unknown; choose one of {', '.join(PRESETS)} or pass --pattern REGEX",
            )
        return preset, preset.compiled, preset.name
    # A sample spread over the listing decides when it is clear-cut (every preset is
    # tried on every file only when it is not, and for the message).
    step = max(1, len(keys) // _DETECTION_SAMPLE)
    sample = keys[::step]
    for subset in (sample, keys) if step > 1 else (keys,):
        counts = {
            name: sum(preset.compiled.fullmatch(key) is not None for key in subset)
            for name, preset in PRESETS.items()
        }
        winners = [name for name, count in counts.items() if count * 2 > len(subset)]
        clear = len(winners) == 1 and counts[winners[0]] * 4 > len(subset) * 3
        if len(winners) == 1 and (clear or subset is keys):
            preset = PRESETS[winners[0]]
            return preset, preset.compiled, preset.name
    tried = ", ".join(f"{name} ({count}/{len(keys)} files)" for name, count in counts.items())
    what = "several naming conventions match" if winners else "no naming convention matches"
    raise MetadataError(
        subject,
        f"{what} most of its {len(keys)} TIFF files (tried {tried}): pass --instrument "
        f"{'|'.join(PRESETS)} or --pattern REGEX (instrument=, pattern=)",
    )


def _place_numbered(
    subject: str, planes: list[PlaneName], options: FileSetOptions, warnings: list[str]
) -> list[PlaneName]:
    numbers = [p.well_number for p in planes if p.well_number is not None]
    if not numbers:
        return planes
    columns = options.plate_columns
    if columns is None:
        columns = plate_columns_for(max(numbers))
        warnings.append(
            f"{subject}: wells are numbered (W{max(numbers)} at most); placed row-major on a "
            f"{columns}-column plate: pass --plate-columns / plate_columns= if it is another"
        )
    return [p.placed(columns) for p in planes]


def _folder_plate(preset: InstrumentPreset | None, folders: Sequence[str]) -> str:
    for folder in folders:
        plate = plate_from_folder(preset, folder)
        if plate != folder:
            return plate
    return folders[0]


def scan_file_set(
    store: Store,
    listing: Mapping[str, int],
    dataset_id: str | None,
    options: FileSetOptions,
    *,
    folders: Sequence[str] = (),
) -> ScanResult:
    """Scan the folder ``store`` (already listed, or the matches of a glob) as one plate.

    Without a plate in the names or ``plate_id``, the plate is the first of
    ``folders`` (the store's folder, then its parents; default: the store's name)
    that the preset's plate-folder pattern matches (Phenix: ``<plate>__<date>-Measurement
    1``), else the first.
    """
    with gc_paused():  # tens of thousands of small objects, none freed
        return _scan_file_set(store, listing, dataset_id, options, folders)


def _scan_file_set(
    store: Store,
    listing: Mapping[str, int],
    dataset_id: str | None,
    options: FileSetOptions,
    folders: Sequence[str],
) -> ScanResult:
    tiffs = tiff_keys(listing)
    thumbnails = {key for key in tiffs if _THUMBNAIL.search(key.rsplit("/", 1)[-1])}
    names = [key for key in tiffs if key not in thumbnails]
    if not names:
        raise MetadataError(store.uri, "not a Zarr store and holds no TIFF images")
    preset, pattern, label = _choose(store.uri, names, options)
    parsed = [parse_file_name(pattern, key) for key in names]
    planes = [plane for plane in parsed if plane is not None]
    if not planes:
        raise MetadataError(store.uri, f"no TIFF file here is named like {label}")
    warnings: list[str] = []
    ignored = {
        "thumbnails": len(thumbnails),
        "non-TIFF files": len(listing) - len(tiffs),
        f"TIFF files not named like {label}": len(names) - len(planes),
    }
    if any(ignored.values()):
        counts = ", ".join(f"{n} {what}" for what, n in ignored.items() if n)
        unmatched = [key for key, plane in zip(names, parsed, strict=True) if plane is None]
        example = f" (e.g. {unmatched[0]})" if unmatched else ""
        warnings.append(f"{store.uri}: ignored {counts}{example}")
    planes = _place_numbered(store.uri, planes, options, warnings)
    default_plate = options.plate_id or _folder_plate(preset, folders or (store.name,))
    plate_id = pick_plate(store.uri, [p.plate or default_plate for p in planes], options.plate_id)
    planes = [p for p in planes if (p.plate or default_plate) == plate_id]
    channels = channel_order({p.channel for p in planes})
    return scan_plate_files(
        store,
        dataset_id=plate_dataset_id(dataset_id, plate_id, store.uri),
        uri=store.uri,
        plate=PlatePlanes(
            plate_id=plate_id,
            planes=planes,
            channels=channels,
            channel_names=options.channel_names or channels,
            warnings=warnings,
            sizes=listing,
        ),
    )


def _is_file_set(probe: Probe) -> bool:
    return probe.is_dir and bool(tiff_keys(probe.listing))


def _read_file_set(probe: Probe) -> ScanResult:
    return scan_file_set(probe.store, probe.listing, probe.given_dataset_id, probe.file_set)


#: Folders of single-image TIFFs named by an instrument's convention, one plate each.
FILE_SET = FormatReader(name="tiff-folder", can_read=_is_file_set, read=_read_file_set)
