"""pycytominer and coSMicQC read, and write back into, a warehouse exported by the CLI.

Every step uses the real tools: the warehouse is written by
``iceberg-bioimage export-cytomining`` (a subprocess), read by
``pycytominer.cyto_utils.load_profiles`` / ``load_cytotable_profiles``, processed by
``pycytominer.normalize`` / ``feature_select`` and ``cosmicqc.find_outliers``, and their
outputs are appended back with ``iceberg-bioimage export-cytomining-profiles`` before
``iceberg-bioimage validate-warehouse`` checks the result.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fixtures import writers
from iceberg_bioimage.samples.plate import write_sample_data
from written_warehouses import WrittenWarehouses, assert_valid_warehouse

pytestmark = pytest.mark.slow

FEATURE_PREFIXES = ("Cells_", "Nuclei_", "Cytoplasm_")
CANONICAL_KEYS = ("dataset_id", "image_id", "plate_id", "well_id", "site_id", "object_id")
IMAGE_COLUMNS = ("uri", "array_path")
# CellProfiler-style metadata of the sample profiles (ObjectNumber has no Metadata_ prefix).
PROFILE_METADATA = ("Metadata_Plate", "Metadata_Well", "Metadata_Site", "ObjectNumber")
OBJECT_KEY = ["Metadata_Well", "Metadata_Site", "ObjectNumber"]
SAMPLE_ROWS = 235
SAMPLE_DATASET = "plate"
# (Metadata_Well, Metadata_Site, ObjectNumber) of the cells write_sample_data gives an
# implausible nucleus: ~6x the area and FormFactor 0.22.
PLANTED_OUTLIERS = {("A02", 1, 5), ("B03", 0, 12)}
# The planted nuclei are large and irregular, so coSMicQC's "large_nuclei" preset
# (Nuclei_AreaShape_Area high and Nuclei_AreaShape_FormFactor low) flags them;
# "small_and_low_formfactor_nuclei" flags none of the sample cells.
QC_PRESET = "large_nuclei"


# -- helpers ------------------------------------------------------------------------

# pycytominer and coSMicQC are imported lazily (~4 s and ~6 s): collecting this module,
# e.g. for `pytest -m "not slow"`, must not pay for them.


def load_profiles(path: Path) -> pd.DataFrame:
    from pycytominer.cyto_utils import load_profiles as load

    return load(str(path))


def load_cytotable_profiles(warehouse: Path, **kwargs: Any) -> pd.DataFrame:
    from pycytominer.cyto_utils import load_cytotable_profiles as load

    return load(warehouse, **kwargs)


def run_cli(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """``python -m iceberg_bioimage ARGS --json``; asserts the exit code."""
    proc = subprocess.run(
        [sys.executable, "-m", "iceberg_bioimage", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == expect, (
        f"iceberg-bioimage {' '.join(args)}: exit {proc.returncode} (expected {expect})\n"
        f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}"
    )
    return proc


def cli_json(*args: str) -> dict[str, Any]:
    return json.loads(run_cli(*args).stdout)


def manifest_entry(warehouse: Path, table_name: str) -> dict[str, Any]:
    manifest = json.loads((warehouse / "warehouse_manifest.json").read_text())
    entries = {t["table_name"]: t for t in manifest["tables"]}
    assert table_name in entries, f"{table_name} not in manifest tables {sorted(entries)}"
    return entries[table_name]


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(FEATURE_PREFIXES)]


def copy_warehouse(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "warehouse"
    shutil.copytree(source, target)
    return target


def object_keys(frame: pd.DataFrame) -> list[tuple[str, int, int]]:
    return [
        (str(w), int(s), int(o))
        for w, s, o in zip(
            frame["Metadata_Well"], frame["Metadata_Site"], frame["ObjectNumber"], strict=True
        )
    ]


# -- module fixtures: one sample warehouse, tool outputs computed once --------------


@pytest.fixture(scope="module")
def sample_warehouse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Sample plate + profiles exported through the CLI into a fresh warehouse."""
    root = tmp_path_factory.mktemp("cytomining_sample")
    sample = write_sample_data(root / "sample")
    warehouse = root / "warehouse"
    report = cli_json(
        "export-cytomining",
        str(sample.plate),
        "--warehouse-root",
        str(warehouse),
        "--profiles",
        str(sample.profiles),
    )
    assert_valid_warehouse(warehouse)  # checked in-process: no CLI start-up
    return {"root": root, "sample": sample, "warehouse": warehouse, "report": report}


@pytest.fixture(scope="module")
def joined_frame(sample_warehouse: dict[str, Any]) -> pd.DataFrame:
    """The joined profiles as pycytominer loads them (a folder of Parquet files)."""
    return load_profiles(sample_warehouse["warehouse"] / "profiles" / "joined_profiles")


@pytest.fixture(scope="module", params=["metadata_only", "with_canonical_keys"])
def pycytominer_output(request: pytest.FixtureRequest, sample_warehouse: dict[str, Any]) -> dict:
    """normalize (standardize) then feature_select the joined profiles, as Parquet files.

    ``metadata_only`` keeps the CellProfiler metadata (Metadata_* + ObjectNumber), so the
    dataset id must be given again on export; ``with_canonical_keys`` also keeps the
    warehouse's canonical keys and image columns (dataset_id, image_id, well_id, ...,
    uri, array_path) beside their Metadata_* aliases, as a user keeping "all metadata"
    would.
    """
    import pycytominer

    warehouse = sample_warehouse["warehouse"]
    out = sample_warehouse["root"] / f"pycytominer_{request.param}"
    out.mkdir()
    meta = list(PROFILE_METADATA)
    if request.param == "with_canonical_keys":
        meta += [*CANONICAL_KEYS, *IMAGE_COLUMNS]
    normalized_path = out / "normalized.parquet"
    selected_path = out / "feature_selected.parquet"
    # normalize() accepts the table folder itself: pycytominer's load_profiles opens a
    # directory whose direct children are .parquet files.
    pycytominer.normalize(
        profiles=str(warehouse / "profiles" / "joined_profiles"),
        features="infer",
        meta_features=meta,
        method="standardize",
        output_file=str(normalized_path),
        output_type="parquet",
    )
    pycytominer.feature_select(
        profiles=str(normalized_path),
        features="infer",
        operation=["variance_threshold", "correlation_threshold", "drop_na_columns", "blocklist"],
        output_file=str(selected_path),
        output_type="parquet",
    )
    return {
        "variant": request.param,
        "meta": meta,
        "normalized": normalized_path,
        "selected": selected_path,
    }


@pytest.fixture(scope="module")
def outliers(joined_frame: pd.DataFrame) -> pd.DataFrame:
    """coSMicQC outliers of the joined profiles (a DataFrame: find_outliers takes a
    DataFrame or a single Parquet file, not a table folder)."""
    import cosmicqc

    found = cosmicqc.find_outliers(
        df=joined_frame,
        metadata_columns=["dataset_id", "image_id", *PROFILE_METADATA],
        feature_thresholds=QC_PRESET,
    )
    return pd.DataFrame(found)


def qc_table(joined: pd.DataFrame, flagged: pd.DataFrame, *, with_image_id: bool) -> pd.DataFrame:
    """Every joined row with a boolean qc_pass (not flagged) and its metadata keys."""
    bad = set(object_keys(flagged))
    keys = ["dataset_id", *(["image_id"] if with_image_id else []), *PROFILE_METADATA]
    table = joined[keys].copy()
    table["qc_pass"] = [k not in bad for k in object_keys(joined)]
    return table


# -- 1. sample plate: pycytominer and coSMicQC round trips ---------------------------


def test_export_joins_every_sample_profile(sample_warehouse: dict[str, Any]) -> None:
    report = sample_warehouse["report"]
    assert report["join"]["profile_rows"] == SAMPLE_ROWS
    assert report["join"]["matched_rows"] == SAMPLE_ROWS
    assert report["join"]["unmatched_rows"] == 0
    folder = sample_warehouse["warehouse"] / "profiles" / "joined_profiles"
    # load_profiles opens folders whose direct children are Parquet files only.
    names = [p.name for p in folder.iterdir()]
    assert len(names) == 1 and re.fullmatch(rf"{SAMPLE_DATASET}\.[0-9a-f]{{12}}\.parquet", names[0])


def test_pycytominer_loads_joined_profiles(
    sample_warehouse: dict[str, Any], joined_frame: pd.DataFrame
) -> None:
    assert len(joined_frame) == SAMPLE_ROWS
    for column in (*PROFILE_METADATA, *CANONICAL_KEYS, *IMAGE_COLUMNS):
        assert column in joined_frame.columns, column
    assert joined_frame["image_id"].notna().all()
    assert set(joined_frame["dataset_id"]) == {SAMPLE_DATASET}
    original = pq.read_table(sample_warehouse["sample"].profiles).to_pandas()
    assert feature_columns(joined_frame) == feature_columns(original)
    # The CellProfiler-style layout pycytominer's CytoTable helper expects.
    via_cytotable = load_cytotable_profiles(sample_warehouse["warehouse"])
    assert len(via_cytotable) == SAMPLE_ROWS


def test_pycytominer_outputs_append_back(
    sample_warehouse: dict[str, Any], pycytominer_output: dict, tmp_path: Path
) -> None:
    normalized = pd.read_parquet(pycytominer_output["normalized"])
    selected = pd.read_parquet(pycytominer_output["selected"])
    assert len(normalized) == len(selected) == SAMPLE_ROWS
    features = feature_columns(normalized)
    assert features
    assert (normalized[features].mean().abs() < 1e-9).all()
    assert ((normalized[features].std(ddof=0) - 1).abs() < 1e-9).all()
    assert set(feature_columns(selected)) <= set(features)
    assert feature_columns(selected)
    for column in pycytominer_output["meta"]:
        assert column in selected.columns, column

    warehouse = copy_warehouse(sample_warehouse["warehouse"], tmp_path)
    args = [
        "export-cytomining-profiles",
        str(pycytominer_output["selected"]),
        "--warehouse-root",
        str(warehouse),
        "--table-name",
        "pycytominer_profiles",
    ]
    if "dataset_id" not in selected.columns:
        args += ["--profile-dataset-id", SAMPLE_DATASET]
    result = cli_json(*args)
    (written,) = result["tables"]
    assert written["table_name"] == "profiles.pycytominer_profiles"
    assert written["rows_written"] == SAMPLE_ROWS

    folder = warehouse / "profiles" / "pycytominer_profiles"
    assert folder.is_dir()
    assert all(p.suffix == ".parquet" for p in folder.iterdir())
    entry = manifest_entry(warehouse, "profiles.pycytominer_profiles")
    assert entry["row_count"] == SAMPLE_ROWS
    assert entry["path"] == "profiles/pycytominer_profiles"
    assert entry["role"] == "joined_profiles"
    # The joined profiles are untouched by the append.
    assert manifest_entry(warehouse, "profiles.joined_profiles")["row_count"] == SAMPLE_ROWS

    # pycytominer reads its own output back out of the warehouse.
    back = load_profiles(folder)
    assert len(back) == SAMPLE_ROWS
    assert set(back["dataset_id"]) == {SAMPLE_DATASET}
    for column in ("plate_id", "well_id", "site_id"):
        assert back[column].notna().all(), column
    merged = back.merge(selected, on=OBJECT_KEY, suffixes=("", "_expected"), validate="1:1")
    assert len(merged) == SAMPLE_ROWS
    for feature in feature_columns(selected):
        pd.testing.assert_series_equal(
            merged[feature], merged[f"{feature}_expected"], check_names=False
        )
    assert len(load_cytotable_profiles(warehouse, table_name="pycytominer_profiles")) == (
        SAMPLE_ROWS
    )
    # What export-cytomining-profiles accepted, validate-warehouse accepts too.
    assert_valid_warehouse(warehouse)


def test_cosmicqc_flags_planted_outliers(outliers: pd.DataFrame) -> None:
    assert set(object_keys(outliers)) == PLANTED_OUTLIERS


@pytest.mark.parametrize("with_image_id", [True, False], ids=["image_id", "image_id_looked_up"])
def test_cosmicqc_table_appends_back(
    sample_warehouse: dict[str, Any],
    joined_frame: pd.DataFrame,
    outliers: pd.DataFrame,
    with_image_id: bool,
    tmp_path: Path,
) -> None:
    qc = qc_table(joined_frame, outliers, with_image_id=with_image_id)
    qc_path = tmp_path / "cosmicqc.parquet"
    qc.to_parquet(qc_path, index=False)
    assert pq.read_schema(qc_path).field("qc_pass").type == pa.bool_()

    warehouse = copy_warehouse(sample_warehouse["warehouse"], tmp_path)
    result = cli_json(
        "export-cytomining-profiles",
        str(qc_path),
        "--warehouse-root",
        str(warehouse),
        "--table-name",
        "cosmicqc_profiles",
        "--role",
        "quality_control",
    )
    (written,) = result["tables"]
    assert written["table_name"] == "quality_control.cosmicqc_profiles"
    assert written["rows_written"] == SAMPLE_ROWS
    entry = manifest_entry(warehouse, "quality_control.cosmicqc_profiles")
    assert entry["role"] == "quality_control"
    assert entry["row_count"] == SAMPLE_ROWS

    folder = warehouse / "quality_control" / "cosmicqc_profiles"
    table = pq.read_table(folder)
    assert table.schema.field("qc_pass").type == pa.bool_()
    stored = load_cytotable_profiles(
        warehouse, namespace="quality_control", table_name="cosmicqc_profiles"
    )
    assert len(stored) == SAMPLE_ROWS
    assert stored["image_id"].notna().all()
    failed = stored[~stored["qc_pass"].astype(bool)]
    assert set(object_keys(failed)) == PLANTED_OUTLIERS
    # Every QC row points at the image its joined profile row was matched to.
    merged = stored.merge(
        joined_frame[[*OBJECT_KEY, "image_id"]],
        on=OBJECT_KEY,
        suffixes=("", "_joined"),
        validate="1:1",
    )
    assert (merged["image_id"] == merged["image_id_joined"]).all()
    assert_valid_warehouse(warehouse)


def test_validate_warehouse_after_round_trip(
    sample_warehouse: dict[str, Any],
    joined_frame: pd.DataFrame,
    outliers: pd.DataFrame,
    tmp_path: Path,
) -> None:
    import pycytominer

    warehouse = copy_warehouse(sample_warehouse["warehouse"], tmp_path)
    # pycytominer output keeping the CellProfiler metadata and the warehouse keys.
    normalized = tmp_path / "normalized.parquet"
    pycytominer.normalize(
        profiles=str(warehouse / "profiles" / "joined_profiles"),
        features="infer",
        meta_features=[*PROFILE_METADATA, *CANONICAL_KEYS, *IMAGE_COLUMNS],
        method="standardize",
        output_file=str(normalized),
        output_type="parquet",
    )
    profiles_args = [
        "export-cytomining-profiles",
        str(normalized),
        "--warehouse-root",
        str(warehouse),
        "--table-name",
        "pycytominer_profiles",
    ]
    run_cli(*profiles_args)
    # Appending the same dataset again is refused; overwrite replaces it.
    refused = run_cli(*profiles_args, expect=2)
    assert "--mode overwrite" in refused.stderr
    run_cli(*profiles_args, "--mode", "overwrite")
    assert manifest_entry(warehouse, "profiles.pycytominer_profiles")["row_count"] == SAMPLE_ROWS

    qc_path = tmp_path / "cosmicqc.parquet"
    qc_table(joined_frame, outliers, with_image_id=True).to_parquet(qc_path, index=False)
    run_cli(
        "export-cytomining-profiles",
        str(qc_path),
        "--warehouse-root",
        str(warehouse),
        "--table-name",
        "cosmicqc_profiles",
        "--role",
        "quality_control",
    )

    report = cli_json("validate-warehouse", str(warehouse))
    assert report["is_valid"] is True, report
    assert report.get("errors", []) == []
    assert report["failed_requirements"] == []

    from iceberg_bioimage.warehouse.validate import validate_warehouse

    result = validate_warehouse(warehouse)
    assert result.is_valid, result.errors
    assert result.failed_requirements == ()


# -- 2. ome-zarr written NGFF 0.4 plate + CellProfiler-style profiles ---------------


def test_ngff04_plate_profiles_join_and_load(
    datasets: dict[str, writers.Fixture], tmp_path: Path, written_warehouses: WrittenWarehouses
) -> None:
    plate = datasets["plate04"]
    profiles = writers.write_profiles(tmp_path, plate, cells_per_field=4)
    n_rows = profiles.expected["n_rows"]
    warehouse = written_warehouses.add(tmp_path / "warehouse")  # validated when the test passes
    report = cli_json(
        "export-cytomining",
        str(plate.path),
        "--warehouse-root",
        str(warehouse),
        "--profiles",
        str(profiles.path),
    )
    join = report["join"]
    assert join["profile_rows"] == n_rows
    assert join["matched_rows"] == n_rows
    assert join["unmatched_rows"] == 0
    assert {"well_id", "site_id"} <= set(join["join_keys"])

    frame = load_profiles(warehouse / "profiles" / "joined_profiles")
    assert len(frame) == n_rows
    assert frame["image_id"].notna().all()
    # Each profile row sits on exactly the image its Metadata_Well/Site name.
    assert frame.groupby("image_id").size().to_dict() == profiles.expected["rows_per_image"]
    for image_id, keys in profiles.expected["join_keys"].items():
        rows = frame[frame["image_id"] == image_id]
        assert set(rows["Metadata_Well"]) == {keys["Metadata_Well"]}
        assert set(rows["Metadata_Site"]) == {keys["Metadata_Site"]}
    assert feature_columns(frame) == profiles.expected["feature_columns"]
    assert manifest_entry(warehouse, "profiles.joined_profiles")["row_count"] == n_rows
