"""Options for scanning file-set plates: folders of single-image TIFFs.

One small frozen dataclass, passed through every verb that scans a store, rather
than a handful of keyword arguments on each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class FileSetOptions:
    """How to read a folder (or LoadData CSV) of single-image TIFFs as a plate.

    Attributes:
        instrument: a preset name from :data:`~iceberg_bioimage.models.instruments.PRESETS`
            (``phenix``, ``imagexpress``, ``cellomics``, ``cv7000``, ``scanr``);
            ``None`` detects it from the file names.
        pattern: a custom regular expression with named groups (``plate``, ``row``,
            ``column``, ``well``, ``well_number``, ``site``, ``channel``, ``z``, ``t``),
            matched against each file's path relative to the folder.
        plate_id: the plate when the names carry none (default: the folder name), or
            the one plate to scan in a folder holding several.
        channel_names: names of the channels in channel order (default: the
            instrument's channel tokens, ``ch1``, ``w1``...).
        plate_columns: columns of the plate, to place wells numbered 1..N row-major
            (Olympus scan^R ``--W00001``); default: the smallest standard plate
            (12, 24 or 48 columns) that holds the highest well number.
    """

    instrument: str | None = None
    pattern: str | None = None
    plate_id: str | None = None
    channel_names: tuple[str, ...] | None = None
    plate_columns: int | None = None

    @classmethod
    def build(
        cls,
        *,
        instrument: str | None = None,
        pattern: str | None = None,
        plate_id: str | None = None,
        channel_names: Sequence[str] | str | None = None,
        plate_columns: int | None = None,
    ) -> FileSetOptions:
        """Options from loose values; ``channel_names`` may be a comma-separated string."""
        if isinstance(channel_names, str):
            channel_names = [name.strip() for name in channel_names.split(",") if name.strip()]
        return cls(
            instrument=instrument,
            pattern=pattern,
            plate_id=plate_id,
            channel_names=tuple(channel_names) if channel_names else None,
            plate_columns=plate_columns,
        )

    @property
    def is_default(self) -> bool:
        """Whether nothing was chosen (every field is unset)."""
        return self == FileSetOptions()
