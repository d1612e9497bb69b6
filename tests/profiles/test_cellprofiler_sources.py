"""Profiles as CellProfiler, cytominer-database and CytoTable write them, joined to real plates.

Every object row must join exactly one image (the one its ImageNumber names in the
Image table), with the counts reported and a unique ``object_id``, against an
OME-NGFF plate (fields ``0..2``) and a Phenix TIFF-folder plate (sites ``1..3``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fixtures import instrument_plates as ip
from fixtures import writers
from fixtures.cellprofiler_outputs import (
    PlateProfiles,
    write_cellprofiler_csv,
    write_cellprofiler_csv_folders,
    write_cellprofiler_sqlite,
    write_cytotable_parquet,
    write_exporttodatabase_sqlite,
    write_well_profiles,
)
from iceberg_bioimage import (
    ProfileOptions,
    api,
    validate_microscopy_profile_table,
    validate_warehouse,
)
from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.profiles.join_tables import join_report

pytestmark = pytest.mark.usefixtures("written_warehouses")  # every warehouse written validates

PLATE = ip.PLATES[0]
WELLS = [ip.well_id(r, c) for r, c in ip.WELLS]
SPEC = PlateProfiles(
    plate=PLATE,
    sites=tuple((well, site) for well in WELLS for site in range(1, ip.SITES + 1)),
    objects_per_image=tuple((i * 7) % 5 + 1 for i in range(len(WELLS) * ip.SITES)),
    seed=3,
    image_size=(ip.WIDTH, ip.HEIGHT),
)


@pytest.fixture(scope="module")
def plates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same plate twice: OME-NGFF 0.4 with fields 0..2, and Phenix TIFFs with sites 1..3."""
    root = tmp_path_factory.mktemp("plates")
    rows = sorted({w[0] for w in WELLS})
    columns = sorted({str(int(w[1:])) for w in WELLS}, key=int)
    ngff = writers._write_ngff_plate(
        root,
        name=PLATE,
        fmt=writers._ome_zarr().format.FormatV04(),
        rows=rows,
        columns=columns,
        wells=[f"{w[0]}/{int(w[1:])}" for w in WELLS],
        fields=[str(f) for f in range(ip.SITES)],
    )
    phenix = ip.write_phenix(root)[PLATE]
    return {"ngff": ngff.path, "tiff": phenix.path}


SOURCES = {
    "cytominer_sqlite": lambda root: write_cellprofiler_sqlite(root / "plate.sqlite", SPEC),
    "exporttodatabase_sqlite": lambda root: write_exporttodatabase_sqlite(root / "cp.sqlite", SPEC),
    "per_site_csv_folders": lambda root: write_cellprofiler_csv_folders(root / "analysis", SPEC),
    "spreadsheet_folder": lambda root: write_cellprofiler_csv(root / "out", SPEC),
    "cytotable_parquet": lambda root: write_cytotable_parquet(root / "cytotable", SPEC),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("profiles")
    written = {}
    for name, write in SOURCES.items():
        (root / name).mkdir()
        written[name] = write(root / name)
    return written


def _source_path(fixture: Any, name: str) -> Path:
    if name == "per_site_csv_folders":
        return fixture.path  # the folder of per-site folders
    return fixture.path


def _field(plate: str, site: int) -> str:
    return str(site - 1) if plate == "ngff" else str(site)


@pytest.mark.parametrize("plate", ["ngff", "tiff"])
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_nucleus_joins_the_image_its_image_number_names(
    plates: dict[str, Path], sources: dict[str, Any], name: str, plate: str
) -> None:
    fixture = sources[name]
    joined = api.join_profiles_with_store(
        plates[plate],
        _source_path(fixture, name),
        options=ProfileOptions(compartment="nuclei", site_base=1),
    )
    report = join_report(joined)
    truth = fixture.objects["Nuclei"]
    assert report["grain"] == "object" and report["compartment"] == "nuclei"
    assert report["profile_rows"] == report["matched_rows"] == truth.num_rows
    assert report["unmatched_rows"] == 0
    assert joined.num_rows == truth.num_rows
    # each row sits in the well and field its Image row names
    expected = Counter(
        (w, _field(plate, s))
        for w, s in zip(truth["well"].to_pylist(), truth["site"].to_pylist(), strict=True)
    )
    found = Counter(zip(joined["well_id"].to_pylist(), joined["site_id"].to_pylist(), strict=True))
    assert found == expected
    ids = joined["object_id"]
    assert ids.null_count == 0 and len(pc.unique(ids)) == joined.num_rows
    first = joined.slice(0, 1).to_pylist()[0]
    number = next(v for k, v in first.items() if k.lower().endswith("objectnumber") or
                  k.endswith("_Number_Object_Number"))  # fmt: skip
    assert first["object_id"] == f"{first['image_id']}:nuclei:{number}"


@pytest.mark.parametrize("name", ["cytominer_sqlite", "per_site_csv_folders"])
def test_export_writes_one_table_per_compartment(
    plates: dict[str, Path], sources: dict[str, Any], name: str, tmp_path: Path
) -> None:
    fixture = sources[name]
    result = api.export_store_to_cytomining_warehouse(
        plates["ngff"],
        tmp_path / "wh",
        profiles=_source_path(fixture, name),
        options=ProfileOptions(site_base=1),
    )
    written = {t.table_name: t.rows_written for t in result.tables}
    counts = fixture.expected["compartment_counts"]
    assert written == {
        "images.image_assets": written["images.image_assets"],
        "images.chunk_index": written["images.chunk_index"],
        "profiles.cells_profiles": counts["Cells"],
        "profiles.cytoplasm_profiles": counts["Cytoplasm"],
        "profiles.nuclei_profiles": counts["Nuclei"],
    }
    assert not result.warnings
    manifest = api.load_warehouse_manifest(tmp_path / "wh")
    nuclei = manifest.table("profiles.nuclei_profiles")
    assert nuclei.role == "profiles"
    assert nuclei.grain == {"profile_level": "object", "compartment": "nuclei"}
    assert validate_warehouse(tmp_path / "wh").is_valid


def test_one_chosen_compartment_is_also_joined_profiles(
    plates: dict[str, Path], sources: dict[str, Any], tmp_path: Path
) -> None:
    result = api.export_store_to_cytomining_warehouse(
        plates["tiff"],
        tmp_path / "wh",
        profiles=sources["cytominer_sqlite"].path,
        options=ProfileOptions(compartment="cells"),
    )
    names = {t.table_name for t in result.tables}
    assert {"profiles.cells_profiles", "profiles.joined_profiles"} <= names
    assert "profiles.nuclei_profiles" not in names
    assert result.join["compartment"] == "cells" and result.join["unmatched_rows"] == 0


def test_nuclei_csv_alone_reaches_its_images_through_image_table(
    plates: dict[str, Path], sources: dict[str, Any], tmp_path: Path
) -> None:
    folder = sources["spreadsheet_folder"].path
    nuclei = tmp_path / "Nuclei.csv"
    nuclei.write_bytes((folder / "Nuclei.csv").read_bytes())  # no Image.csv beside it
    with pytest.raises(ContractError, match="image_id or well_id"):
        api.join_profiles_with_store(plates["tiff"], nuclei)
    joined = api.join_profiles_with_store(
        plates["tiff"], nuclei, options=ProfileOptions(image_table=folder / "Image.csv")
    )
    report = join_report(joined)
    assert report["unmatched_rows"] == 0 and report["compartment"] == "nuclei"
    assert joined["object_id"][0].as_py().split(":")[-2] == "nuclei"
    # next to its Image.csv the hop is automatic
    auto = api.join_profiles_with_store(plates["tiff"], folder / "Nuclei.csv")
    assert auto["object_id"].equals(joined["object_id"])


def test_several_compartments_need_a_choice_for_one_table(
    plates: dict[str, Path], sources: dict[str, Any]
) -> None:
    with pytest.raises(ContractError, match=r"several compartments \(cells, cytoplasm, nuclei\)"):
        api.join_profiles_with_store(plates["tiff"], sources["cytominer_sqlite"].path)


# -- Site numbering ------------------------------------------------------------------


def test_one_based_sites_on_zero_based_fields_warn_without_site_base(
    plates: dict[str, Path], sources: dict[str, Any]
) -> None:
    source = sources["cytominer_sqlite"].path
    joined = api.join_profiles_with_store(
        plates["ngff"], source, options=ProfileOptions(compartment="nuclei")
    )
    report = join_report(joined)
    (warning,) = [w for w in report["warnings"] if "site" in w]
    assert "profile sites run 1..3 but image fields 0..2" in warning
    assert "--site-base 1" in warning
    last_site = [n for (_w, s), n in sources["cytominer_sqlite"].expected["object_counts"].items()
                 if s == 3]  # fmt: skip
    assert report["unmatched_rows"] == sum(last_site)  # site 3 has no field "3"
    exact = join_report(
        api.join_profiles_with_store(
            plates["ngff"], source, options=ProfileOptions(compartment="nuclei", site_base=1)
        )
    )
    assert exact["unmatched_rows"] == 0 and not [w for w in exact["warnings"] if "site" in w]


def test_matching_site_numbers_do_not_warn(
    plates: dict[str, Path], sources: dict[str, Any]
) -> None:
    joined = api.join_profiles_with_store(
        plates["tiff"],
        sources["cytominer_sqlite"].path,
        options=ProfileOptions(compartment="nuclei"),
    )
    report = join_report(joined)
    assert report["unmatched_rows"] == 0 and report["warnings"] == []


# -- Grain ---------------------------------------------------------------------------


def test_well_level_profiles_keep_their_rows_and_get_image_ids(
    plates: dict[str, Path], tmp_path: Path
) -> None:
    wells = write_well_profiles(tmp_path / "consensus.parquet", SPEC)
    for plate in ("ngff", "tiff"):
        joined = api.join_profiles_with_store(plates[plate], wells.path)
        report = join_report(joined)
        assert report["grain"] == "well"
        assert joined.num_rows == len(WELLS) == report["matched_rows"]
        assert [len(ids) for ids in joined["image_ids"].to_pylist()] == [ip.SITES] * len(WELLS)
        well_of_images = {i.split(":")[1].rsplit("/", 1)[0] for i in joined["image_ids"][0].as_py()}
        assert len(well_of_images) == 1  # every image of the row's own well


def test_well_level_export_records_the_grain(plates: dict[str, Path], tmp_path: Path) -> None:
    wells = write_well_profiles(tmp_path / "consensus.parquet", SPEC)
    api.export_store_to_cytomining_warehouse(plates["tiff"], tmp_path / "wh", profiles=wells.path)
    entry = api.load_warehouse_manifest(tmp_path / "wh").table("profiles.joined_profiles")
    assert entry.grain["profile_level"] == "well"
    result = validate_warehouse(tmp_path / "wh")
    assert result.is_valid, result.errors


def test_aliases_of_the_published_reference_resolve() -> None:
    table = pa.table(
        {
            "Metadata_Source": ["d"],
            "Image_Metadata_Plate": ["P"],
            "Image_Metadata_Well": ["A01"],
            "Metadata_FOV": [1],
        }
    )
    result = validate_microscopy_profile_table(table)
    # Metadata_Source is JUMP's contributing centre, never the dataset (SPEC §5)
    assert "dataset_id" in result.missing_columns
    result = validate_microscopy_profile_table(table, profile_dataset_id="d")
    assert result.profile_dataset_id == "d"
    assert result.resolved_aliases == {
        "plate_id": "Image_Metadata_Plate",
        "well_id": "Image_Metadata_Well",
        "site_id": "Metadata_FOV",
    }
    other = validate_microscopy_profile_table(
        pa.table({"Metadata_Well": ["A01"], "Metadata_SiteNumber": [2]}), profile_dataset_id="d"
    )
    assert other.resolved_aliases["site_id"] == "Metadata_SiteNumber"
