"""Where each object's segmentation is: NGFF ``labels/`` arrays or CellProfiler TIFFs.

A label image is catalogued like any image: ``image_assets`` rows (``is_label`` true)
and ``chunk_index`` rows, so crops read only its chunks the boxes touch. NGFF label
images are found by the scan (``<image_id>/labels/<name>``). CellProfiler label images
(``SaveImages`` of ``ConvertObjectsToImage``, one per site and compartment) and outline
images are found in the folders the user names, matched per site: by the profiles'
``ObjectsFileName_<Compartment>`` / ``FileName_<Compartment>Outlines`` column, else by
name (``<plate>_<well>_s<site>_<Compartment>_mask.tiff``, ``..._outlines.tiff``, or a
pattern with named groups ``plate``, ``well``, ``site``, ``compartment``). Each matched
file is scanned (its TIFF header only) and its rows are renamed as a label image of the
image it labels: ``<image_id>/labels/<compartment>`` (masks) and
``<image_id>/labels/<compartment>_outlines`` (outlines), with the compartment, the kind
and the file in ``metadata_json``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.crops.plan import ArrayLayout
from iceberg_bioimage.exceptions import ContractError, StoreNotFoundError
from iceberg_bioimage.models.keys import normalize_well_id
from iceberg_bioimage.models.paths import is_inside
from iceberg_bioimage.profiles.contract import DEFAULT_ALIASES

#: The kinds of segmentation a crop can carry, and their image_id suffixes.
KINDS = ("mask", "outline")
_SUFFIX = {"mask": "", "outline": "_outlines"}
_DEFAULT = {
    "mask": r"^(?P<plate>.+)_(?P<well>[A-Za-z]+\d+)_s(?P<site>[^_]+)_(?P<compartment>[^_]+)"
    r"_mask\.tiff?$",
    "outline": r"^(?P<plate>.+)_(?P<well>[A-Za-z]+\d+)_s(?P<site>[^_]+)_(?P<compartment>[^_]+)"
    r"_outlines\.tiff?$",
}
_GROUPS = ("plate", "well", "site", "compartment")
#: Most files a mask or outline folder walk looks at.
MAX_FOLDER_FILES = 1_000_000

SiteKey = tuple[str | None, str, str, str | None]


@dataclass(frozen=True, kw_only=True)
class LabelSpec:
    """Where the segmentation comes from: the store's NGFF labels, or folders."""

    mask_dir: str | None = None
    outline_dir: str | None = None
    pattern: str | None = None

    @property
    def from_folders(self) -> bool:
        """Whether CellProfiler folders were named (else NGFF labels are used)."""
        return self.mask_dir is not None or self.outline_dir is not None

    def folder(self, kind: str) -> str | None:
        """The folder of ``kind`` (``mask`` or ``outline``)."""
        return self.mask_dir if kind == "mask" else self.outline_dir

    def regex(self, kind: str) -> re.Pattern[str]:
        """The file-name pattern of ``kind``."""
        try:
            compiled = re.compile(self.pattern or _DEFAULT[kind])
        except re.error as error:
            raise ContractError("--mask-pattern", f"not a regular expression: {error}") from None
        names = set(compiled.groupindex)
        if not {"well", "site"} <= names or names - set(_GROUPS):
            raise ContractError(
                "--mask-pattern",
                f"needs named groups well and site (and may have plate, compartment); "
                f"it has {sorted(names) or 'none'}",
            )
        return compiled


def label_spec(
    mask_dir: str | os.PathLike[str] | None,
    outline_dir: str | os.PathLike[str] | None,
    pattern: str | None,
) -> LabelSpec:
    """Check the folders exist (one clear error each) and build the :class:`LabelSpec`."""
    folders = {}
    for flag, folder in (("--mask-dir", mask_dir), ("--outline-dir", outline_dir)):
        if folder is None:
            continue
        path = os.fspath(folder)
        if not os.path.isdir(path):
            raise StoreNotFoundError(path, f"{flag} is not a folder")
        folders[flag] = os.path.realpath(path)
    if pattern is not None and not folders:
        raise ContractError("--mask-pattern", "needs --mask-dir or --outline-dir")
    return LabelSpec(
        mask_dir=folders.get("--mask-dir"),
        outline_dir=folders.get("--outline-dir"),
        pattern=pattern,
    )


def _site(value: object) -> str:
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.0+)?", text):
        return str(int(float(text)))
    return text


def folder_files(root: str, regex: re.Pattern[str]) -> dict[SiteKey, str]:
    """Files under ``root`` (never outside it) whose names match, by (plate, well, site, c)."""
    found: dict[SiteKey, str] = {}
    seen = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            seen += 1
            if seen > MAX_FOLDER_FILES:
                raise ContractError(
                    root, f"more than {MAX_FOLDER_FILES:,} files; name a sub-folder"
                )
            match = regex.match(name)
            path = os.path.join(folder, name)
            if match is None or not is_inside(root, os.path.realpath(path)):
                continue
            groups = match.groupdict()
            try:
                well = normalize_well_id(groups["well"])
            except ValueError:
                continue
            compartment = groups.get("compartment")
            key = (
                groups.get("plate"),
                well,
                _site(groups["site"]),
                compartment.lower() if compartment else None,
            )
            if key in found:
                raise ContractError(
                    root, f"two files for one site: {found[key]!r} and {path!r}; use --mask-pattern"
                )
            found[key] = path
    return found


def _key_columns(names: Sequence[str]) -> dict[str, str]:
    """The profile columns of plate, well and site (``Metadata_*`` first: as in the profiles)."""
    lowered = {n.lower(): n for n in names}
    out = {}
    for key in ("plate_id", "well_id", "site_id"):
        for alias in (*DEFAULT_ALIASES[key], key):
            if alias.lower() in lowered:
                out[key] = lowered[alias.lower()]
                break
    return out


def _file_column(names: Sequence[str], kind: str, compartment: str) -> str | None:
    wanted = (
        [f"objectsfilename_{compartment}", f"image_objectsfilename_{compartment}"]
        if kind == "mask"
        else [
            f"filename_{compartment}outlines",
            f"filename_{compartment}_outlines",
            f"image_filename_{compartment}outlines",
        ]
    )
    lowered = {n.lower(): n for n in names}
    return next((lowered[w] for w in wanted if w in lowered), None)


def _lookup(
    files: dict[SiteKey, str], plate: str | None, well: str, site: str, c: str
) -> str | None:
    for key in ((plate, well, site, c), (None, well, site, c), (plate, well, site, None)):
        if key in files:
            return files[key]
    return files.get((None, well, site, None))


def folder_label_tables(
    objects: pa.Table, image_assets: pa.Table, spec: LabelSpec, label: str
) -> tuple[pa.Table, pa.Table]:
    """``image_assets`` and ``chunk_index`` rows of the label TIFFs of the objects' images."""
    from iceberg_bioimage.formats import scan
    from iceberg_bioimage.tables.build import canonical_table

    first = _first_rows(objects)
    columns = _key_columns(objects.column_names)
    assets, chunks = [], []
    for kind in KINDS:
        root = spec.folder(kind)
        if root is None:
            continue
        files: dict[SiteKey, str] | None = None
        for image_id, (row, compartment) in first.items():
            column = _file_column(objects.column_names, kind, compartment)
            path = None
            if column is not None and row.get(column):
                path = os.path.realpath(os.path.join(root, os.path.basename(str(row[column]))))
                if not os.path.isfile(path) or not is_inside(root, path):
                    raise StoreNotFoundError(path, f"named by {column}, not a file in {root}")
            else:
                if "well_id" not in columns or "site_id" not in columns:
                    raise ContractError(
                        label,
                        f"{kind}s are matched per site: the profiles need well and site "
                        "columns (Metadata_Well, Metadata_Site)",
                    )
                files = files if files is not None else folder_files(root, spec.regex(kind))
                plate = row.get(columns["plate_id"]) if "plate_id" in columns else None
                well, site = row.get(columns["well_id"]), row.get(columns["site_id"])
                if well is None or site is None:
                    continue
                path = _lookup(
                    files,
                    None if plate is None else str(plate),
                    normalize_well_id(str(well)),
                    _site(site),
                    compartment,
                )
            if path is None:
                continue
            result = scan(path)
            base = image_assets.filter(pc.equal(image_assets["image_id"], image_id)).slice(0, 1)
            renamed = f"{image_id}/labels/{compartment}{_SUFFIX[kind]}"
            facts = {
                "label_of": image_id,
                "compartment": compartment,
                "kind": kind,
                "file": os.path.basename(path),
            }
            assets.append(_relabel(canonical_table(result, "image_assets"), base, renamed, facts))
            chunks.append(_relabel(canonical_table(result, "chunk_index"), base, renamed, None))
    if not assets:
        return _empty(image_assets), _empty(None)
    return pa.concat_tables(assets), pa.concat_tables(chunks)


def _empty(like: pa.Table | None) -> pa.Table:
    from iceberg_bioimage.tables.schema import arrow_schema

    return (like.schema if like is not None else arrow_schema("chunk_index")).empty_table()


def _first_rows(objects: pa.Table) -> dict[str, tuple[dict[str, object], str]]:
    """Each image's first object row and its compartment (from ``object_id``)."""
    out: dict[str, tuple[dict[str, object], str]] = {}
    image_ids = objects["image_id"].to_pylist()
    object_ids = objects["object_id"].to_pylist()
    for index, (image_id, object_id) in enumerate(zip(image_ids, object_ids, strict=True)):
        if image_id is None or image_id in out or object_id is None:
            continue
        compartment = str(object_id).rsplit(":", 2)[-2].lower()
        out[image_id] = (objects.slice(index, 1).to_pylist()[0], compartment)
    return out


def _relabel(
    table: pa.Table, base: pa.Table, image_id: str, facts: dict[str, str] | None
) -> pa.Table:
    """``table`` as rows of the label image ``image_id`` of the image in ``base``."""
    n = table.num_rows

    def put(name: str, values: pa.Array) -> None:
        nonlocal table
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), values)

    put("dataset_id", pa.array([base["dataset_id"][0].as_py()] * n, pa.string()))
    put("image_id", pa.array([image_id] * n, pa.string()))
    if facts is not None:
        for name in ("plate_id", "well_id", "well_row", "well_column", "site_id"):
            put(name, pa.repeat(base[name][0], n).cast(table.schema.field(name).type))
        put("is_label", pa.array([True] * n, pa.bool_()))
        put("metadata_json", pa.array([json.dumps(facts, sort_keys=True)] * n, pa.string()))
    return table


def ngff_parent(image_id: str) -> tuple[str, str] | None:
    """``(image it labels, label name)`` of an NGFF label image id, else ``None``."""
    for separator in ("/labels/", ":labels/"):
        if separator in image_id:
            parent, _, name = image_id.rpartition(separator)
            if "/" not in name:
                return parent, name
    return None


def label_arrays(image_assets: pa.Table) -> dict[str, dict[str, list[ArrayLayout]]]:
    """Label arrays by the image they label, then by label name (levels in order)."""
    if "is_label" not in image_assets.column_names:
        return {}
    rows = image_assets.filter(pc.fill_null(image_assets["is_label"], False)).to_pylist()
    out: dict[str, dict[str, list[ArrayLayout]]] = {}
    for row in rows:
        parent = ngff_parent(row["image_id"])
        if parent is None:
            continue
        out.setdefault(parent[0], {}).setdefault(parent[1], []).append(ArrayLayout.from_row(row))
    return out


def pick_label(
    names: dict[str, list[ArrayLayout]], compartment: str, kind: str, image: ArrayLayout
) -> ArrayLayout | None:
    """The label array of ``kind`` for ``compartment`` at the geometry of ``image``.

    Masks: the label named as the compartment (``nuclei``/``Nuclei``/``nucleus``...), or
    the image's only label. Outlines: ``<compartment>_outlines``. The level is the one
    whose y/x size equals the image array's.
    """
    wanted = compartment.lower()
    candidates = {
        n: v for n, v in names.items() if n.lower().endswith("_outlines") == (kind == "outline")
    }
    stems = {n.lower().removesuffix("_outlines"): n for n in candidates}
    chosen = next(
        (stems[s] for s in (wanted, wanted.rstrip("s"), f"{wanted}s") if s in stems), None
    )
    if chosen is None and kind == "mask" and len(candidates) == 1:
        chosen = next(iter(candidates))
    if chosen is None:
        if kind == "mask" and candidates:
            raise ContractError(
                image.image_id,
                f"no label image named {compartment!r}; its labels are {sorted(candidates)}",
            )
        return None
    for layout in candidates[chosen]:
        if layout.width == image.width and layout.height == image.height:
            return layout
    raise ContractError(
        image.image_id,
        f"label {chosen!r} has no level of {image.width}x{image.height} pixels "
        f"(the image at level {image.multiscale_level})",
    )


def folder_label_ids(image_assets: pa.Table) -> list[str]:
    """Image ids of the label images that came from mask or outline folders."""
    if "is_label" not in image_assets.column_names:
        return []
    rows = image_assets.filter(pc.fill_null(image_assets["is_label"], False))
    out = set()
    for image_id, text in zip(
        rows["image_id"].to_pylist(), rows["metadata_json"].to_pylist(), strict=True
    ):
        try:
            facts = json.loads(text or "{}")
        except ValueError:
            continue
        if isinstance(facts, dict) and "label_of" in facts:
            out.add(image_id)
    return sorted(out)
