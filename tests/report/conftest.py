"""The sample data the report tests show, and what they know about its pixels."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from iceberg_bioimage.api import write_sample_data


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory):
    """``sample-data``'s files (written once)."""
    return write_sample_data(tmp_path_factory.mktemp("report-sample"))


@pytest.fixture(scope="session")
def qc_plate(sample, tmp_path_factory: pytest.TempPathFactory):
    """The sample NGFF plate with well B03 removed and one level-0 chunk of A02/0 deleted,
    a coSMicQC-style QC table in a warehouse, and a platemap naming every well.

    Returns ``(plate, cells, warehouse, platemap, qc)``.
    """
    import json

    from iceberg_bioimage.api import (
        export_profiles_to_cytomining_warehouse,
        export_store_to_cytomining_warehouse,
    )

    root = tmp_path_factory.mktemp("report-qc")
    plate = root / "qc.ome.zarr"
    shutil.copytree(sample.plate, plate)
    attrs = json.loads((plate / ".zattrs").read_text())
    attrs["plate"]["wells"] = [w for w in attrs["plate"]["wells"] if w["path"] != "B/3"]
    (plate / ".zattrs").write_text(json.dumps(attrs))
    shutil.rmtree(plate / "B" / "3")
    (plate / "A" / "2" / "0" / "0" / "0" / "0" / "1" / "1").unlink()  # c=0, z=0, y=1, x=1

    cells = pq.read_table(sample.profiles)
    cells = cells.filter(pc.not_equal(cells["Metadata_Well"], "B03"))
    cells_path = root / "cells.parquet"
    pq.write_table(cells, cells_path)
    area = cells["Nuclei_AreaShape_Area"].to_numpy()
    qc = cells.select(["Metadata_Plate", "Metadata_Well", "Metadata_Site", "ObjectNumber"])
    qc = qc.append_column("cqc.large_nuclei.is_outlier", pa.array(area > np.percentile(area, 80)))
    qc = qc.append_column("qc_pass", pa.array(area <= np.percentile(area, 95)))
    warehouse = root / "warehouse"
    export_store_to_cytomining_warehouse(plate, warehouse)
    export_profiles_to_cytomining_warehouse(
        qc,
        warehouse,
        table_name="quality_control.cosmicqc",
        role="quality_control",
        profile_dataset_id="qc",
    )
    platemap = root / "platemap.txt"
    lines = ["plate_map_name\twell_position\ttreatment\tcontrol"]
    for well in ("A01", "A02", "A03", "B01", "B02", "B03"):
        control = "negative" if well in ("A01", "B01") else "none"
        treatment = "DMSO" if control == "negative" else f"compound-{well[-1]}"
        lines.append(f"map\t{well}\t{treatment}\t{control}")
    platemap.write_text("\n".join(lines) + "\n")
    return plate, cells_path, warehouse, platemap, qc
