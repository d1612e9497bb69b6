"""Streaming a LoadData table: CSV quirks real writers produce, Parquet types, limits."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.formats.file_set.load_data_table import iter_table
from iceberg_bioimage.io.storage import open_store
from iceberg_bioimage.models.limits import Limits

COLUMNS = ["Metadata_Plate", "Metadata_Well", "Metadata_Site", "FileName_DNA", "PathName_DNA"]


def _rows(path: Path, limits: Limits | None = None, *, parquet: bool = False) -> list[dict]:
    out: list[dict] = []
    for batch in iter_table(open_store(path), COLUMNS, parquet=parquet, limits=limits or Limits()):
        out.extend(
            {name: batch.columns[name][i] for name in COLUMNS} for i in range(batch.num_rows)
        )
    return out


def test_csv_with_bom_crlf_quoted_newline_and_extra_columns(tmp_path: Path) -> None:
    """What Excel and CellProfiler write: BOM, CRLF, quoted commas and newlines."""
    path = tmp_path / "load_data.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as handle:
        out = csv.writer(handle, lineterminator="\r\n")
        out.writerow(["Notes", *COLUMNS])
        out.writerow(["a, b\nc", "P1", "A01", "1", "x, y.tif", "/data/my images"])
        out.writerow(["", "P1", "A01", "2", "z.tif", "/data"])
    with open(path, newline="", encoding="utf-8-sig") as handle:
        expected = [{k: row[k] for k in COLUMNS} for row in csv.DictReader(handle)]
    assert _rows(path) == expected
    assert expected[0]["FileName_DNA"] == "x, y.tif"


def test_csv_in_batches_keeps_every_row_in_order(tmp_path: Path) -> None:
    path = tmp_path / "load_data.csv"
    lines = [",".join(COLUMNS)] + [f"P1,A01,{i},f{i}.tif,/d" for i in range(20_000)]
    path.write_text("\n".join(lines) + "\n")
    rows = _rows(path)
    assert [r["Metadata_Site"] for r in rows] == [str(i) for i in range(20_000)]


def test_row_and_line_limits(tmp_path: Path) -> None:
    path = tmp_path / "load_data.csv"
    path.write_text(",".join(COLUMNS) + "\n" + "P1,A01,1,a.tif,/d\nP1,A01,2,b.tif,/d\n")
    assert len(_rows(path, Limits(max_table_rows=2))) == 2
    with pytest.raises(MetadataError, match="ICEBERG_BIOIMAGE_MAX_TABLE_ROWS"):
        _rows(path, Limits(max_table_rows=1))
    path.write_text(",".join(COLUMNS) + "\n" + "P1,A01,1," + "a" * 500 + ".tif,/d\n")
    with pytest.raises(MetadataError, match="line 2") as caught:
        _rows(path, Limits(max_line_bytes=256))
    assert "ICEBERG_BIOIMAGE_MAX_LINE_BYTES" in str(caught.value)


def test_parquet_types_cast_to_text(tmp_path: Path) -> None:
    """pandas writes sites as int64 and often dictionary-encodes repeated strings."""
    path = tmp_path / "load_data.parquet"
    table = pa.table(
        {
            "Metadata_Plate": pa.array(["P1", "P1"]).dictionary_encode(),
            "Metadata_Well": pa.array(["A01", "A02"], pa.large_string()),
            "Metadata_Site": pa.array([1, 2], pa.int64()),
            "FileName_DNA": ["a.tif", "b.tif"],
            "PathName_DNA": ["/d", "/d"],
        }
    )
    pq.write_table(table, path)
    rows = _rows(path, parquet=True)
    assert [r["Metadata_Site"] for r in rows] == ["1", "2"]
    assert [r["Metadata_Plate"] for r in rows] == ["P1", "P1"]


def test_parquet_row_limit_from_the_footer(tmp_path: Path) -> None:
    path = tmp_path / "load_data.parquet"
    pq.write_table(pa.table({name: ["x"] * 5 for name in COLUMNS}), path)
    with pytest.raises(MetadataError, match="5 rows is over"):
        _rows(path, Limits(max_table_rows=4), parquet=True)
