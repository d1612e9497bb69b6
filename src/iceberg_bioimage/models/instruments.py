"""Instrument file-naming conventions, as data: one table of presets.

Each preset is a regular expression with named groups, matched (whole) against a
file's path relative to the plate folder. :func:`parse_file_name` turns a match
into canonical ids: numeric rows become letters (``r03`` → ``C``), wells are
normalised (``A01``), site, z and t numbers lose their zero padding (``f02`` →
``2``) and the channel keeps the instrument's own token (``ch1``, ``w1``, ``d0``,
``C01``, or the scan^R channel name).

Conventions (checked against public readers of these formats):

* ``phenix`` — PerkinElmer/Revvity Opera Phenix and Operetta (Harmony export):
  ``r{row:02}c{column:02}f{field:02}p{plane:02}-ch{channel}sk{timepoint+1}fk1fl1.tiff``.
* ``imagexpress`` — Molecular Devices MetaXpress: ``<plate>_<well>_s<site>_w<channel>``
  then an optional GUID (right after the channel, after ``_``, or as ``_[<GUID>]``),
  ``.tif``; optional ``TimePoint_<n>/`` and ``ZStep_<n>/`` folders; ``_thumb`` files
  are thumbnails (never matched).
* ``cellomics`` — Thermo ArrayScan: ``<name>_<well>f<field:02>d<channel>.tif``.
* ``cv7000`` — Yokogawa CV7000/CV8000:
  ``<plate>_<well>_T<t:04>F<field:03>L<line:02>A<action:02>Z<z:02>C<channel:02>.tif``.
* ``scanr`` — Olympus scan^R: ``<name>--W<well:05>--P<position:05>--Z<z:05>--T<t:05>--
  <channel>.tif``; wells are numbered from 1, row-major over the plate, so placing
  them needs the plate's column count (``plate_columns``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.models.keys import row_letters, split_well_id
from iceberg_bioimage.models.regex_safety import UnsafePattern, check_pattern_safety

#: Named groups a file-name pattern may use.
GROUPS = ("plate", "row", "column", "well", "well_number", "site", "channel", "z", "t")

_FOLDERS = r"(?:[^/]+/)*?"
_TIF = r"\.(?i:tiff?)"
_WELL = r"(?P<well>[A-Za-z]{1,2}\d{2})"
_GUID = r"(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})"


@dataclass(frozen=True, kw_only=True)
class InstrumentPreset:
    """One instrument's file-naming convention."""

    name: str
    vendor: str
    example: str
    regex: str
    #: Folder names that carry the plate, e.g. the Phenix measurement folder
    #: ``BR00116991__2020-11-05T19_51_35-Measurement1`` → ``BR00116991``.
    plate_folder: str | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        """The compiled pattern."""
        return _compile(self.regex)


PRESETS: Mapping[str, InstrumentPreset] = {
    preset.name: preset
    for preset in (
        InstrumentPreset(
            name="phenix",
            vendor="PerkinElmer/Revvity Opera Phenix, Operetta (Harmony)",
            example="r03c11f02p01-ch4sk1fk1fl1.tiff",
            regex=_FOLDERS + r"r(?P<row>\d{2})c(?P<column>\d{2})f(?P<site>\d{2,3})"
            r"p(?P<z>\d{2,3})-(?P<channel>ch\d+)sk(?P<t>\d+)fk\d+fl\d+" + _TIF,
            plate_folder=r"(?P<plate>.+?)__.*-Measurement ?\d+",
        ),
        InstrumentPreset(
            name="imagexpress",
            vendor="Molecular Devices ImageXpress (MetaXpress)",
            example="BR00116991_A01_s1_w1A1B2C3D4-0000-1111-2222-333344445555.tif",
            regex=r"(?:[^/]+/)*?(?:TimePoint_(?P<t>\d+)/)?(?:ZStep_(?P<z>\d+)/)?"
            r"(?P<plate>[^/]+)_"
            + _WELL
            + r"(?:_s(?P<site>\d+))?_(?P<channel>w\d+)"
            # MetaXpress writes the GUID right after the channel, after "_", or
            # after "_" in brackets: w1<GUID>, w1_<GUID>, w1_[<GUID>] (all seen in
            # CellProfiler's example plates).
            + rf"(?:_?{_GUID}|_\[{_GUID}\])?"
            + _TIF,
        ),
        InstrumentPreset(
            name="cellomics",
            vendor="Thermo Fisher Cellomics ArrayScan",
            example="AS_09125_050116030001_A01f00d0.tif",
            regex=_FOLDERS
            + r"(?P<plate>[^/]+)_"
            + _WELL
            + r"f(?P<site>\d{2,})(?P<channel>d\d+)"
            + _TIF,
        ),
        InstrumentPreset(
            name="cv7000",
            vendor="Yokogawa CellVoyager CV7000/CV8000",
            example="BR00116991_A01_T0001F001L01A01Z01C01.tif",
            regex=_FOLDERS + r"(?P<plate>[^/]+)_" + _WELL + r"_T(?P<t>\d{4})F(?P<site>\d{3})"
            r"L\d{2}A\d{2}Z(?P<z>\d{2})(?P<channel>C\d{2})" + _TIF,
        ),
        InstrumentPreset(
            name="scanr",
            vendor="Olympus/Evident scan^R",
            example="A1--W00001--P00001--Z00000--T00000--DAPI.tif",
            regex=_FOLDERS + r"[^/]*?--W(?P<well_number>\d+)--P(?P<site>\d+)"
            r"(?:--Z(?P<z>\d+))?(?:--T(?P<t>\d+))?--(?P<channel>[^/]+?)" + _TIF,
        ),
    )
}

#: Standard plate widths (columns) tried, smallest first, when wells are numbered.
STANDARD_PLATE_COLUMNS = ((96, 12), (384, 24), (1536, 48))


@dataclass(frozen=True, kw_only=True)
class PlaneName:
    """What one file's name says: where its plane sits in the plate."""

    key: str
    plate: str | None
    well_id: str | None
    well_number: int | None
    site: str
    channel: str
    z: int
    t: int

    def placed(self, plate_columns: int) -> PlaneName:
        """This name with ``well_id`` derived from a row-major ``well_number``."""
        if self.well_number is None:
            return self
        row, column = divmod(self.well_number - 1, plate_columns)
        return PlaneName(
            key=self.key,
            plate=self.plate,
            well_id=f"{row_letters(row)}{column + 1:02d}",
            well_number=self.well_number,
            site=self.site,
            channel=self.channel,
            z=self.z,
            t=self.t,
        )


@functools.cache
def _compile(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def custom_pattern(regex: str) -> re.Pattern[str]:
    """Compile a user's ``--pattern``; :class:`MetadataError` names what is wrong with it."""
    try:
        compiled = re.compile(regex)
    except re.error as error:
        raise MetadataError(f"--pattern {regex!r}", f"not a regular expression: {error}") from None
    try:  # re cannot be interrupted: refuse the shapes that backtrack without end
        check_pattern_safety(regex)
    except UnsafePattern as error:
        raise MetadataError(f"--pattern {regex!r}", str(error)) from None
    names = set(compiled.groupindex)
    unknown = sorted(names - set(GROUPS))
    if unknown:
        raise MetadataError(
            f"--pattern {regex!r}",
            f"unknown named groups {unknown}; use {', '.join(GROUPS)}",
        )
    has_well = "well" in names or "well_number" in names or {"row", "column"} <= names
    if "channel" not in names or not has_well:
        raise MetadataError(
            f"--pattern {regex!r}",
            "needs a (?P<channel>...) group and a well: (?P<well>...) or "
            "(?P<row>...) with (?P<column>...)",
        )
    return compiled


def _number(text: str | None, default: int = 0) -> int:
    return int(text) if text else default


def _well(groups: Mapping[str, str | None]) -> str | None:
    if groups.get("well"):
        row, column = split_well_id(str(groups["well"]))
        return row + column
    row, column = groups.get("row"), groups.get("column")
    if row is None or column is None:
        return None
    letters = row_letters(int(row) - 1) if row.isdigit() else row.upper()
    return f"{letters}{int(column):02d}"


def parse_file_name(pattern: re.Pattern[str], key: str) -> PlaneName | None:
    """Read one file's place in the plate from its relative path; ``None`` if no match."""
    match = pattern.fullmatch(key)
    if match is None:
        return None
    groups = match.groupdict()
    try:
        well_id = _well(groups)
    except ValueError:
        return None
    number = groups.get("well_number")
    if well_id is None and not number:
        return None
    site = groups.get("site")
    return PlaneName(
        key=key,
        plate=groups.get("plate") or None,
        well_id=well_id,
        well_number=int(number) if number else None,
        site=str(int(site)) if site and site.isdigit() else (site or "0"),
        channel=str(groups["channel"]),
        z=_number(groups.get("z")),
        t=_number(groups.get("t")),
    )


def plate_from_folder(preset: InstrumentPreset | None, folder: str) -> str:
    """The plate a folder name stands for (a Phenix measurement folder loses its suffix)."""
    if preset is not None and preset.plate_folder:
        match = re.fullmatch(preset.plate_folder, folder)
        if match:
            return match.group("plate")
    return folder


def channel_order(tokens: set[str] | list[str]) -> list[str]:
    """Channel tokens in acquisition order: by their number when they hold one."""

    def sort_key(token: str) -> tuple[int, int, str]:
        digits = re.search(r"\d+", token)
        return (0, int(digits.group()), token) if digits else (1, 0, token)

    return sorted(set(tokens), key=sort_key)


def plate_columns_for(highest_well_number: int) -> int:
    """Columns of the smallest standard plate holding ``highest_well_number`` wells."""
    for wells, columns in STANDARD_PLATE_COLUMNS:
        if highest_well_number <= wells:
            return columns
    return STANDARD_PLATE_COLUMNS[-1][1]
