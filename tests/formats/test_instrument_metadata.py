"""Metadata as instruments write it: channel names, physical sizes, formats, labels, plates.

Every file here is written by the real library (tifffile, zarr, ome-zarr); where a
vendor convention cannot be produced by those libraries' own metadata options
(OME ``ModuloAlongC``, MetaSeries descriptions), tifffile writes the file with
the vendor's document as its ``ImageDescription``, as the instruments do.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tifffile
import zarr

from iceberg_bioimage import join_profiles_with_store, scan_result_as_arrow_table, scan_store


def _ome_zarr():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import ome_zarr.format
        import ome_zarr.writer
    return ome_zarr


# --------------------------------------------------------------------------- #
# TIFF: channel names, physical sizes, format
# --------------------------------------------------------------------------- #


def test_ome_channels_without_name_have_no_channel_names(tmp_path):
    path = tmp_path / "unnamed.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), "uint16"), metadata={"axes": "CYX"})
    with tifffile.TiffFile(path) as tif:
        assert (
            "Channel:0:0" in tif.ome_metadata
            and 'Name="' not in tif.ome_metadata.split("<Channel")[1]
        )
    (asset,) = scan_store(path).image_assets
    assert asset.channel_names is None
    assert (asset.format, asset.storage_variant) == ("ome-tiff", "ome-tiff")


def test_ome_channel_names_come_from_name(tmp_path):
    path = tmp_path / "named.ome.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 8, 8), "uint16"),
        metadata={"axes": "CYX", "Channel": {"Name": ["DNA", "Mito"]}},
    )
    (asset,) = scan_store(path).image_assets
    assert asset.channel_names == ("DNA", "Mito")


@pytest.mark.parametrize("bad", [0.0, -0.5, math.nan])
def test_invalid_ome_physical_sizes_are_null_with_a_warning(tmp_path, bad):
    path = tmp_path / "sizes.ome.tif"
    tifffile.imwrite(
        path,
        np.zeros((3, 8, 8), "uint16"),
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.25,
            "PhysicalSizeY": 0.25,
            "PhysicalSizeZ": bad,
        },
    )
    result = scan_store(path)
    (asset,) = result.image_assets
    assert asset.physical_size_x == pytest.approx(0.25)
    assert asset.physical_size_z is None
    assert any(str(path) in w and "PhysicalSizeZ" in w for w in result.warnings), result.warnings


def test_invalid_imagej_spacing_is_null_with_a_warning(tmp_path):
    path = tmp_path / "spacing.tif"
    tifffile.imwrite(
        path,
        np.zeros((3, 8, 8), "uint16"),
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"axes": "ZYX", "spacing": 0.0, "unit": "um"},
    )
    result = scan_store(path)
    (asset,) = result.image_assets
    assert asset.physical_size_x == pytest.approx(0.5)
    assert asset.physical_size_z is None
    assert any(str(path) in w and "spacing" in w for w in result.warnings)


def test_plain_and_imagej_tiffs_are_format_tiff(datasets):
    for name in ("strips", "hyper"):
        result = scan_store(datasets[name].path)
        assert (result.format, result.storage_variant) == ("tiff", "tiff")
        table = scan_result_as_arrow_table(result)
        assert set(table["format"].to_pylist()) == {"tiff"}
        assert set(table["storage_variant"].to_pylist()) == {"tiff"}
    assert scan_store(datasets["pyramid"].path).format == "ome-tiff"


def test_imagej_hyperstack_channel_labels(tmp_path):
    path = tmp_path / "labelled.tif"
    # ImageJ plane order is channels fastest, then slices: one label per plane.
    labels = [f"{channel}" for _z in range(3) for channel in ("DNA", "ER")]
    tifffile.imwrite(
        path,
        np.zeros((3, 2, 8, 8), "uint16"),
        imagej=True,
        metadata={"axes": "ZCYX", "Labels": labels},
    )
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["Labels"] == labels
    result = scan_store(path)
    (asset,) = result.image_assets
    assert asset.axes is not None and "c" in asset.axes
    assert asset.channel_names == ("DNA", "ER")
    assert result.format == "tiff"


def test_metaseries_illumination_setting_is_the_channel_name(tmp_path):
    """MetaMorph's MetaSeries TIFF (one channel per file) names it in ``_IllumSetting_``.

    tifffile cannot write STK (UIC tags); MetaSeries is its description document.
    """
    path = tmp_path / "plate_B02_s1_w1.tif"
    description = (
        "<MetaData><PlaneInfo>"
        '<prop id="image-name" type="string" value="DAPI"/>'
        '<prop id="_IllumSetting_" type="string" value="DAPI"/>'
        "</PlaneInfo></MetaData>"
    )
    tifffile.imwrite(
        path,
        np.zeros((8, 8), "uint16"),
        description=description,
        software="MetaSeries",
        metadata=None,
    )
    with tifffile.TiffFile(path) as tif:
        assert tif.is_metaseries
    result = scan_store(path)
    (asset,) = result.image_assets
    assert asset.channel_names == ("DAPI",)
    assert result.format == "tiff"


def _flim_ome_xml(names: list[str], channels: int, bins: int) -> str:
    channel_xml = "".join(
        f'<Channel ID="Channel:0:{i}" Name="{name}" SamplesPerPixel="1"/>'
        for i, name in enumerate(names)
    )
    labels = "".join(f"<Label>{i * 500}</Label>" for i in range(bins))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0" Name="flim"><AnnotationRef ID="Annotation:Modulo:0"/>'
        f'<Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="8" SizeY="8" '
        f'SizeC="{channels * bins}" SizeZ="1" SizeT="1">{channel_xml}'
        f'<TiffData IFD="0" PlaneCount="{channels * bins}"/></Pixels></Image>'
        "<StructuredAnnotations>"
        '<XMLAnnotation ID="Annotation:Modulo:0" '
        'Namespace="openmicroscopy.org/omero/dimension/modulo"><Value>'
        '<Modulo namespace="http://www.openmicroscopy.org/Schemas/Additions/2011-09">'
        f'<ModuloAlongC Type="other" TypeDescription="TCSPC" Unit="ps">{labels}'
        "</ModuloAlongC></Modulo></Value></XMLAnnotation></StructuredAnnotations></OME>"
    )


def _write_flim(path: Path, names: list[str]) -> None:
    tifffile.imwrite(
        path,
        np.zeros((16, 8, 8), "uint16"),
        description=_flim_ome_xml(names, channels=2, bins=8),
        metadata=None,
    )


def test_flim_modulo_along_c_names_the_real_channels(tmp_path):
    path = tmp_path / "flim.ome.tif"
    _write_flim(path, ["Donor"] * 8 + ["Acceptor"] * 8)
    with tifffile.TiffFile(path) as tif:
        shape = tif.series[0].get_shape(False)
        axes = tif.series[0].get_axes(False)
    result = scan_store(path)
    (asset,) = result.image_assets
    assert asset.shape == tuple(shape)
    assert shape[axes.index("C")] == 2
    assert asset.channel_names == ("Donor", "Acceptor")


def test_flim_modulo_along_c_with_per_bin_names_is_null_with_a_warning(tmp_path):
    path = tmp_path / "flimbins.ome.tif"
    _write_flim(path, [f"ch{c}-bin{b}" for c in range(2) for b in range(8)])
    result = scan_store(path)
    (asset,) = result.image_assets
    assert asset.channel_names is None
    assert any("ModuloAlongC" in w and str(path) in w for w in result.warnings)


# --------------------------------------------------------------------------- #
# NGFF labels
# --------------------------------------------------------------------------- #


def _write_image_with_label(root: Path) -> Path:
    ome_zarr = _ome_zarr()
    store = root / "cells.ome.zarr"
    fmt = ome_zarr.format.FormatV04()
    group = zarr.open_group(store, mode="w", zarr_format=2)
    ome_zarr.writer.write_image(
        np.zeros((2, 32, 32), "uint16"),
        group,
        axes="cyx",
        fmt=fmt,
        scale_factors=[],
        storage_options={"chunks": (1, 16, 16)},
    )
    ome_zarr.writer.write_labels(
        np.zeros((32, 32), "uint32"),
        group,
        name="nuclei",
        axes="yx",
        fmt=fmt,
        scaler=None,
        scale_factors=[],
        storage_options={"chunks": (16, 16)},
    )
    return store


def test_ngff_label_images_are_scanned_as_their_own_images(tmp_path):
    store = _write_image_with_label(tmp_path)
    assert zarr.open_group(store / "labels", mode="r").attrs["labels"] == ["nuclei"]
    result = scan_store(store)
    images = {a.image_id: a for a in result.image_assets if a.multiscale_level == 0}
    assert set(images) == {"cells", "cells:labels/nuclei"}
    label = images["cells:labels/nuclei"]
    assert label.is_label and not images["cells"].is_label
    assert label.array_path.startswith("labels/nuclei/")
    assert label.dtype == "uint32" and label.shape == (32, 32)
    table = scan_result_as_arrow_table(result)
    flags = dict(zip(table["image_id"].to_pylist(), table["is_label"].to_pylist(), strict=True))
    assert flags == {"cells": False, "cells:labels/nuclei": True}
    chunks = scan_result_as_arrow_table(result, table="chunk_index")
    label_keys = [
        k for k in chunks["chunk_key"].to_pylist() if k.startswith(f"{label.array_path}/")
    ]
    assert len(label_keys) == label.chunk_count == 4


def test_register_evolves_an_old_image_assets_table_to_is_label(tmp_path):
    from pyiceberg.catalog.sql import SqlCatalog

    from iceberg_bioimage import load_catalog_table, register_store
    from iceberg_bioimage.catalog.schema import (
        iceberg_schema,
        partition_spec,
        sort_order,
    )
    from iceberg_bioimage.models.schemas import IMAGE_ASSETS, TableSchema

    store = _write_image_with_label(tmp_path)
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    catalog = SqlCatalog(
        "old",
        uri=f"sqlite:///{tmp_path / 'catalog.db'}",
        warehouse=warehouse.as_uri(),
    )
    catalog.create_namespace("bio")
    old = TableSchema(
        name="image_assets",
        columns=tuple(c for c in IMAGE_ASSETS.columns if c.name != "is_label"),
    )
    catalog.create_table(
        ("bio", "image_assets"),
        schema=iceberg_schema(old),
        partition_spec=partition_spec(old),
        sort_order=sort_order(old),
    )
    register_store(store, catalog, "bio")
    table = catalog.load_table(("bio", "image_assets"))
    field = table.schema().find_field("is_label")
    # union_by_name gives an added column the table's next free id
    assert not field.required and str(field.field_type) == "boolean"
    rows = load_catalog_table(catalog, "bio", "image_assets")
    flags = dict(zip(rows["image_id"].to_pylist(), rows["is_label"].to_pylist(), strict=True))
    assert flags == {"cells": False, "cells:labels/nuclei": True}


# --------------------------------------------------------------------------- #
# Plates with numbered rows (bioformats2raw)
# --------------------------------------------------------------------------- #


def _write_numbered_plate(root: Path) -> Path:
    ome_zarr = _ome_zarr()
    store = root / "numbered.ome.zarr"
    fmt = ome_zarr.format.FormatV04()
    rows = [str(i) for i in range(16)]
    columns = [str(i) for i in range(24)]
    wells = ["12/21", "0/0"]
    group = zarr.open_group(store, mode="w", zarr_format=2)
    ome_zarr.writer.write_plate_metadata(
        group, rows, columns, wells, fmt=fmt, name="numbered", field_count=1
    )
    for well in wells:
        row, column = well.split("/")
        well_group = group.require_group(row).require_group(column)
        ome_zarr.writer.write_well_metadata(well_group, ["0"], fmt=fmt)
        ome_zarr.writer.write_image(
            np.zeros((1, 16, 16), "uint16"),
            well_group.require_group("0"),
            axes="cyx",
            fmt=fmt,
            scale_factors=[],
            storage_options={"chunks": (1, 16, 16)},
        )
        ome_zarr.writer.write_labels(
            np.zeros((16, 16), "uint32"),
            well_group["0"],
            name="cells",
            axes="yx",
            fmt=fmt,
            scaler=None,
            scale_factors=[],
            storage_options={"chunks": (16, 16)},
        )
    return store


def test_numbered_rows_well_ids_from_row_index(tmp_path):
    store = _write_numbered_plate(tmp_path)
    plate = zarr.open_group(store, mode="r").attrs["plate"]
    assert plate["rows"][12] == {"name": "12"}
    result = scan_store(store)
    assets = {a.image_id: a for a in result.image_assets}
    label = assets["numbered:12/21/0/labels/cells"]
    assert label.is_label and label.well_id == "M22" and label.site_id == "0"
    far = assets["numbered:12/21/0"]
    assert (far.well_id, far.well_row, far.well_column) == ("M22", "12", "21")
    first = assets["numbered:0/0/0"]
    assert (first.well_id, first.well_row, first.well_column) == ("A01", "0", "0")
    table = scan_result_as_arrow_table(result)
    got = {
        (w, r, c)
        for w, r, c in zip(
            table["well_id"].to_pylist(),
            table["well_row"].to_pylist(),
            table["well_column"].to_pylist(),
            strict=True,
        )
    }
    assert got == {("M22", "12", "21"), ("A01", "0", "0")}
    assert table.num_rows == 4  # two fields and their label images


def test_numbered_row_plate_joins_letter_well_profiles(tmp_path):
    """Label images share their field's well and site; the join keeps to the fields."""
    store = _write_numbered_plate(tmp_path)
    profiles = pa.table(
        {
            "Metadata_Plate": ["numbered", "numbered"],
            "Metadata_Well": ["M22", "A01"],
            "Metadata_Site": ["0", "0"],
            "Cells_AreaShape_Area": [10.0, 20.0],
        }
    )
    joined = join_profiles_with_store(store, profiles, profile_dataset_id="numbered")
    assert joined.num_rows == 2
    pairs = dict(
        zip(joined["Metadata_Well"].to_pylist(), joined["image_id"].to_pylist(), strict=True)
    )
    assert pairs == {"M22": "numbered:12/21/0", "A01": "numbered:0/0/0"}


# --------------------------------------------------------------------------- #
# Multi-file OME-TIFF
# --------------------------------------------------------------------------- #

_OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def _multifile_xml(names: list[str], uuids: list[str], own_uuid: str) -> str:
    tiff_data = "".join(
        f'<TiffData FirstC="{c}" IFD="0" PlaneCount="1">'
        f'<UUID FileName="{name}">{uuid}</UUID></TiffData>'
        for c, (name, uuid) in enumerate(zip(names, uuids, strict=True))
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{_OME_NS}" UUID="{own_uuid}">'
        '<Image ID="Image:0" Name="mf"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" '
        f'Type="uint16" SizeX="40" SizeY="30" SizeC="{len(names)}" SizeZ="1" SizeT="1">'
        + "".join(
            f'<Channel ID="Channel:0:{c}" Name="ch{c}" SamplesPerPixel="1"/>'
            for c in range(len(names))
        )
        + f"{tiff_data}</Pixels></Image></OME>"
    )


def _uuids(count: int) -> list[str]:
    import uuid

    return [f"urn:uuid:{uuid.uuid4()}" for _ in range(count)]


def _write_multifile(folder: Path, *, companion: bool) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    names = ["mf_C0.ome.tiff", "mf_C1.ome.tiff"]
    uuids = _uuids(2)
    for c, name in enumerate(names):
        if companion:
            description = (
                f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{_OME_NS}" '
                f'UUID="{uuids[c]}"><BinaryOnly MetadataFile="mf.companion.ome" '
                'UUID="urn:uuid:00000000-0000-0000-0000-000000000000"/></OME>'
            )
        else:
            description = _multifile_xml(names, uuids, uuids[c])
        tifffile.imwrite(
            folder / name,
            np.full((30, 40), c + 1, "uint16"),
            description=description,
            metadata=None,
            rowsperstrip=8,
        )
    if companion:
        (folder / "mf.companion.ome").write_text(
            _multifile_xml(names, uuids, _uuids(1)[0]), encoding="utf-8"
        )
    return [folder / name for name in names]


def _check_multifile(result, first: Path, folder: Path, omexml: str | None = None) -> None:
    """Ground truth: tifffile's own multi-file series (given the companion's OME-XML)."""
    with tifffile.TiffFile(first, omexml=omexml) as tif:
        series = tif.series[0]
        assert series.is_multifile
        shape = tuple(series.get_shape(False))
        pixels = series.asarray()
    (asset,) = result.image_assets
    assert asset.shape == shape
    assert asset.channel_names == ("ch0", "ch1")
    chunks = scan_result_as_arrow_table(result, table="chunk_index").to_pylist()
    assert len(chunks) == asset.chunk_count == 2 * 4
    assert {row["chunk_key"] for row in chunks} == {"mf_C0.ome.tiff", "mf_C1.ome.tiff"}
    channel_axis = asset.axes.index("c")
    for row in chunks:
        raw = (folder / row["chunk_key"]).read_bytes()
        data = raw[row["byte_offset"] : row["byte_offset"] + row["byte_length"]]
        channel = row["chunk_coords"][channel_axis]
        strip = np.frombuffer(data, "<u2")
        assert row["chunk_key"] == f"mf_C{channel}.ome.tiff"
        assert set(strip.tolist()) == {channel + 1}
    assert pixels.max() == 2


def test_multifile_ome_tiff_is_one_image_over_its_files(tmp_path):
    folder = tmp_path / "mf"
    first, _ = _write_multifile(folder, companion=False)
    result = scan_store(first)
    assert result.format == "ome-tiff"
    _check_multifile(result, first, folder)


def test_companion_ome_and_binary_only_tiffs(tmp_path):
    folder = tmp_path / "mfc"
    first, _ = _write_multifile(folder, companion=True)
    companion = (folder / "mf.companion.ome").read_text(encoding="utf-8")
    from_companion = scan_store(folder / "mf.companion.ome")
    assert from_companion.dataset_id == "mf"
    _check_multifile(from_companion, first, folder, companion)
    _check_multifile(scan_store(first), first, folder, companion)


def test_multifile_missing_file_warns_and_skips(tmp_path):
    folder = tmp_path / "mfm"
    _, second = _write_multifile(folder, companion=True)
    second.unlink()
    with pytest.raises(ValueError, match="no intact image data") as raised:
        scan_store(folder / "mf.companion.ome")
    assert "mf_C1.ome.tiff" in str(raised.value)


def test_multifile_reference_outside_the_folder_is_refused(tmp_path):
    from iceberg_bioimage.exceptions import MetadataError

    folder = tmp_path / "inner"
    folder.mkdir()
    names = ["own.ome.tiff", "../outside.ome.tiff"]
    uuids = _uuids(2)
    tifffile.imwrite(tmp_path / "outside.ome.tiff", np.zeros((30, 40), "uint16"))
    tifffile.imwrite(
        folder / "own.ome.tiff",
        np.zeros((30, 40), "uint16"),
        description=_multifile_xml(names, uuids, uuids[0]),
        metadata=None,
    )
    with pytest.raises(MetadataError, match="outside"):
        scan_store(folder / "own.ome.tiff")


def test_imagej_slice_labels_are_not_channel_names(tmp_path):
    path = tmp_path / "slices.tif"
    tifffile.imwrite(
        path,
        np.zeros((3, 8, 8), "uint16"),
        imagej=True,
        metadata={"axes": "ZYX", "Labels": ["z0", "z1", "z2"]},
    )
    (asset,) = scan_store(path).image_assets
    assert asset.channel_names is None
