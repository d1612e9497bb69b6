"""Platemaps: JUMP/pycytominer folders read into one Arrow table; profiles annotated."""

from __future__ import annotations

import math
import random
import string
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.cellprofiler_outputs import write_platemap
from iceberg_bioimage.exceptions import ContractError, StoreNotFoundError
from iceberg_bioimage.profiles.platemap import annotate_with_platemap, read_platemap

WELLS = ["A01", "A02", "B10", "H12", "P24"]
PLATES = {"BR1": "map_a", "BR2": "map_a", "BR3": "map_b"}


def canonical(row: str, column: int) -> str:
    return f"{row}{column:02d}"


def test_reads_barcodes_and_maps(tmp_path):
    fx = write_platemap(tmp_path, PLATES, WELLS)
    table = read_platemap(fx.path)
    assert table.column_names == [
        "Metadata_Plate", "Metadata_well_position", "well_id", "Metadata_plate_map_name",
        "Metadata_broad_sample", "Metadata_mmoles_per_liter", "Metadata_pert_type",
        "Metadata_control_type",
    ]  # fmt: skip
    assert table.num_rows == len(PLATES) * len(WELLS)
    truth = fx.annotations
    assert table["Metadata_Plate"].to_pylist() == truth["Assay_Plate_Barcode"].to_pylist()
    assert table["well_id"].to_pylist() == truth["well_position"].to_pylist()
    for column in ("plate_map_name", "broad_sample", "mmoles_per_liter", "pert_type"):
        assert table[f"Metadata_{column}"].to_pylist() == truth[column].to_pylist()


def test_single_map_file_and_no_double_prefix(tmp_path):
    path = tmp_path / "layout.csv"
    path.write_text("Metadata_well_position,treatment,Metadata_dose\na1,DMSO,0\nB/2,drug,1.5\n")
    table = read_platemap(path)
    assert table.column_names == [
        "Metadata_well_position", "well_id", "Metadata_treatment", "Metadata_dose",
    ]  # fmt: skip
    assert table["well_id"].to_pylist() == ["A01", "B02"]
    assert table["Metadata_well_position"].to_pylist() == ["a1", "B/2"]
    txt = tmp_path / "map.txt"
    txt.write_text("well_position\tpert_iname\nC03\tx\n")
    assert read_platemap(txt)["Metadata_pert_iname"].to_pylist() == ["x"]


@pytest.mark.parametrize(
    ("barcodes", "maps", "message"),
    [
        ("Assay_Plate_Barcode\nBR1\n", {}, "missing column(s) Plate_Map_Name"),
        ("Assay_Plate_Barcode,Plate_Map_Name\nBR1,m\nBR1,m\n", {"m": "well_position\nA01\n"},
         "BR1 is listed more than once"),
        ("Assay_Plate_Barcode,Plate_Map_Name\nBR1,gone\n", {}, "plate map 'gone' (plate BR1)"),
        ("Assay_Plate_Barcode,Plate_Map_Name\nBR1,m\n", {"m": "well\tx\nA01\t1\n"},
         "no well_position column"),
        ("Assay_Plate_Barcode,Plate_Map_Name\nBR1,m\n", {"m": "well_position\nA01\na1\n"},
         "A01 is listed more than once"),
        ("Assay_Plate_Barcode,Plate_Map_Name\nBR1,m\n", {"m": "well_position\nA01\nhello\n"},
         "not a well name: 'hello'"),
        ("Assay_Plate_Barcode,Plate_Map_Name\nBR1,m\n",
         {"m": "well_position\tx\tMetadata_x\nA01\t1\t2\n"}, "columns clash once prefixed"),
        ("Assay_Plate_Barcode,Plate_Map_Name\nBR1,m\n", {"m": "well_position\tPlate\nA01\tp\n"},
         "has a Metadata_Plate column"),
        ("Assay_Plate_Barcode,Plate_Map_Name\nBR1,m\n", {"m": "well_position\tx\n\t1\n"},
         "have no well_position"),
    ],
)  # fmt: skip
def test_bad_platemaps_name_the_file(tmp_path, barcodes, maps, message):
    (tmp_path / "platemap").mkdir()
    (tmp_path / "barcode_platemap.csv").write_text(barcodes)
    for name, text in maps.items():
        (tmp_path / "platemap" / f"{name}.txt").write_text(text)
    with pytest.raises(ContractError) as info:
        read_platemap(tmp_path / "barcode_platemap.csv")
    assert message in str(info.value)
    assert str(info.value).startswith(str(tmp_path))


def test_missing_platemap_file(tmp_path):
    with pytest.raises(StoreNotFoundError, match=r"barcode_platemap\.csv"):
        read_platemap(tmp_path / "barcode_platemap.csv")


def profiles_for(plates: list[str], wells: list[str], seed: int = 0) -> pa.Table:
    rng = random.Random(seed)
    pairs = [(p, w) for p in plates for w in wells for _ in range(rng.randint(0, 3))]
    rng.shuffle(pairs)
    return pa.table(
        {
            "plate_id": [p for p, _ in pairs],
            "well_id": [w for _, w in pairs],
            "Cells_AreaShape_Area": np.arange(len(pairs), dtype=np.float64),
        }
    )


def test_annotate_keeps_rows_and_order(tmp_path):
    fx = write_platemap(tmp_path, PLATES, WELLS)
    platemap = read_platemap(fx.path)
    profiles = profiles_for([*PLATES, "UNLISTED"], [*WELLS, "O01"])
    out = annotate_with_platemap(profiles, platemap)
    assert out.num_rows == profiles.num_rows
    assert out.select(profiles.column_names).equals(profiles)
    lookup = {
        (p, w): (s, t)
        for p, w, s, t in zip(
            *(fx.annotations[c].to_pylist()
              for c in ("Assay_Plate_Barcode", "well_position", "broad_sample", "pert_type")),
            strict=True,
        )
    }  # fmt: skip
    got = zip(
        *(out[c].to_pylist()
          for c in ("plate_id", "well_id", "Metadata_broad_sample", "Metadata_pert_type")),
        strict=True,
    )  # fmt: skip
    for plate, well, sample, pert in got:
        assert (sample, pert) == lookup.get((plate, well), (None, None))
    assert "Metadata_well_position" not in out.column_names
    assert "Metadata_Plate" not in out.column_names


def test_annotate_refuses_clashes_and_missing_keys(tmp_path):
    platemap = read_platemap(write_platemap(tmp_path, PLATES, WELLS).path)
    profiles = profiles_for(list(PLATES), WELLS)
    clash = profiles.append_column("Metadata_pert_type", pa.nulls(profiles.num_rows, pa.string()))
    with pytest.raises(ContractError, match="Metadata_pert_type"):
        annotate_with_platemap(clash, platemap)
    with pytest.raises(ContractError, match="plate_id"):
        annotate_with_platemap(profiles.drop(["plate_id"]), platemap)


ROW_NAMES = [*string.ascii_uppercase[:16], "AA", "AF"]


@st.composite
def well_spellings(draw):
    """Distinct wells, each written in one of the spellings labs use."""
    cells = draw(
        st.lists(
            st.tuples(st.sampled_from(ROW_NAMES), st.integers(1, 48)),
            min_size=1, max_size=12, unique=True,
        )
    )  # fmt: skip
    out = []
    for row, column in cells:
        style = draw(
            st.sampled_from(["{r}{c}", "{r}{c:02d}", "{r}/{c}", "{r}_{c:02d}", "{l}{c:03d}"])
        )
        out.append(((row, column), style.format(r=row, l=row.lower(), c=column)))
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(wells=well_spellings(), seed=st.integers(0, 1000))
def test_well_spellings_normalise_and_join(tmp_path_factory, wells, seed):
    root = tmp_path_factory.mktemp("pm")
    (root / "platemap").mkdir()
    (root / "barcode_platemap.csv").write_text("Assay_Plate_Barcode,Plate_Map_Name\nP1,m\n")
    lines = ["plate_map_name\twell_position\ttag"]
    lines += [f"m\t{spelled}\tt{i}" for i, (_, spelled) in enumerate(wells)]
    (root / "platemap" / "m.txt").write_text("\n".join(lines) + "\n")
    table = read_platemap(root / "barcode_platemap.csv")
    assert table["well_id"].to_pylist() == [canonical(r, c) for (r, c), _ in wells]
    ids = [canonical(r, c) for (r, c), _ in wells] + ["ZZ99"]
    profiles = profiles_for(["P1", "P2"], ids, seed)
    out = annotate_with_platemap(profiles, table)
    assert out.num_rows == profiles.num_rows
    tag = {canonical(r, c): f"t{i}" for i, ((r, c), _) in enumerate(wells)}
    expected = [
        tag.get(w) if p == "P1" else None
        for p, w in zip(profiles["plate_id"].to_pylist(), profiles["well_id"].to_pylist(),
                        strict=True)
    ]  # fmt: skip
    assert out["Metadata_tag"].to_pylist() == expected


def as_cells(frame):
    """Rows as lists: NaN/None → None; floats to 12 digits (pandas' default float parser
    can differ from the exact value in the last bit, pyarrow round-trips)."""

    def cell(v):
        if isinstance(v, float):
            return None if math.isnan(v) else round(v, 12)
        return v

    return [[cell(v) for v in row] for row in frame.itertuples(index=False)]


def test_annotate_matches_pycytominer(tmp_path):
    pycytominer = pytest.importorskip("pycytominer")
    fx = write_platemap(tmp_path, {"BR1": "map_a"}, WELLS)
    platemap = read_platemap(fx.path)
    profiles = profiles_for(["BR1"], WELLS, seed=3)
    profiles = profiles.append_column("Metadata_Well", profiles["well_id"])
    profiles = profiles.append_column("Metadata_row", pa.array(range(profiles.num_rows)))
    ours = annotate_with_platemap(profiles, platemap).to_pandas()
    theirs = pycytominer.annotate(
        profiles=profiles.to_pandas(),
        platemap=str(Path(fx.path).parent / "platemap" / "map_a.txt"),
        join_on=["Metadata_well_position", "Metadata_Well"],
    )
    added = [c for c in platemap.column_names if c.startswith("Metadata_")]
    added = [c for c in added if c not in ("Metadata_Plate", "Metadata_well_position")]
    assert sorted(c for c in theirs.columns if c in added) == sorted(added)
    theirs = theirs.sort_values("Metadata_row").reset_index(drop=True)
    assert len(theirs) == len(ours)
    assert as_cells(ours[added]) == as_cells(theirs[added])


def _barcodes(folder: Path, name: str) -> Path:
    (folder / "platemap").mkdir(parents=True, exist_ok=True)
    path = folder / "barcode_platemap.csv"
    path.write_text(f"Assay_Plate_Barcode,Plate_Map_Name\nP1,{name}\n")
    return path


@pytest.mark.parametrize("name", ["../secret", "../../secret", "/etc/passwd", "a\\b", ".."])
def test_plate_map_names_that_leave_the_folder_are_refused(tmp_path, name):
    (tmp_path / "secret.txt").write_text("well_position\tx\nA01\tSECRET\n")
    with pytest.raises(ContractError, match="not a plain file name"):
        read_platemap(_barcodes(tmp_path / "maps", name))


def test_a_plate_map_symlinked_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.txt").write_text("well_position\tx\nA01\tSECRET\n")
    barcodes = _barcodes(tmp_path / "maps", "M")
    (tmp_path / "maps" / "platemap" / "M.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ContractError, match="outside"):
        read_platemap(barcodes)
    inside = tmp_path / "maps" / "shared.txt"  # a symlink that stays inside is followed
    inside.write_text("well_position\tx\nA01\tok\n")
    (tmp_path / "maps" / "platemap" / "M.txt").unlink()
    (tmp_path / "maps" / "platemap" / "M.txt").symlink_to(inside)
    assert read_platemap(barcodes)["Metadata_x"].to_pylist() == ["ok"]


def test_a_huge_platemap_is_refused_by_its_size_before_reading(tmp_path, monkeypatch):
    barcodes = _barcodes(tmp_path, "M")
    with open(tmp_path / "platemap" / "M.txt", "wb") as handle:
        handle.write(b"well_position\tx")
        handle.truncate(3 * 2**30)  # a sparse 3 GiB file without a newline
    with pytest.raises(ContractError, match="ICEBERG_BIOIMAGE_MAX_PLATEMAP_BYTES"):
        read_platemap(barcodes)
    (tmp_path / "platemap" / "M.txt").write_text("well_position\tx\nA01\t" + "y" * 500 + "\n")
    monkeypatch.setenv("ICEBERG_BIOIMAGE_MAX_FIELD_BYTES", "100")
    with pytest.raises(ContractError, match="ICEBERG_BIOIMAGE_MAX_FIELD_BYTES"):
        read_platemap(barcodes)
    monkeypatch.delenv("ICEBERG_BIOIMAGE_MAX_FIELD_BYTES")
    monkeypatch.setenv("ICEBERG_BIOIMAGE_MAX_PLATEMAP_ROWS", "1")
    with pytest.raises(ContractError, match="ICEBERG_BIOIMAGE_MAX_PLATEMAP_ROWS"):
        read_platemap(barcodes)
