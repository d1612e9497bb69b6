"""OME-Arrow helpers on real fixtures, checked against tifffile / zarr reads of the same pixels."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from fixtures.writers import Fixture
from iceberg_bioimage import api
from iceberg_bioimage.exceptions import (
    MetadataError,
    MissingDependencyError,
    StoreNotFoundError,
)
from iceberg_bioimage.interop.ome_arrow import create_ome_arrow, scan_ome_arrow

# bioio-ome-tiff (ome-arrow's TIFF reader) passes a parser argument ome-types ignores
pytestmark = pytest.mark.filterwarnings(
    "ignore:As of version 0.4.0, the parser argument is ignored:DeprecationWarning"
)

INSTALL_HINT = "pip install 'iceberg-bioimage[ome-arrow]'"


def _tczyx(oa: object) -> np.ndarray:
    """Pixels through ome-arrow's own export (TCZYX, uint16)."""
    return oa.export(how="numpy")  # type: ignore[attr-defined]


def _channel_names(oa: object) -> list[str]:
    channels = oa.data["pixels_meta"]["channels"].as_py()  # type: ignore[attr-defined]
    return [channel["name"] for channel in channels]


def _zarr_level0(store: Path, image_path: str, level_path: str) -> np.ndarray:
    return zarr.open_array(store, path=f"{image_path}/{level_path}", mode="r")[:]


needs_ome_arrow = pytest.mark.skipif(
    importlib.util.find_spec("ome_arrow") is None, reason="the ome-arrow extra is not installed"
)


def _ome_arrow() -> object:
    import ome_arrow

    return ome_arrow


# -- create_ome_arrow -----------------------------------------------------------


@needs_ome_arrow
def test_ome_tiff_pixels_equal_series0_level0(datasets: dict[str, Fixture]) -> None:
    fixture = datasets["pyramid"]
    expected = fixture.expected
    oa = create_ome_arrow(fixture.path)

    array = expected["arrays"]["0/0"]
    c, y, x = array["shape"]
    pixels = _tczyx(oa)
    assert pixels.shape == (1, c, 1, y, x)
    reference = tifffile.imread(fixture.path, series=0, level=0)
    assert reference.shape == array["shape"]
    np.testing.assert_array_equal(pixels[0, :, 0], reference)

    assert oa.data["id"].as_py() == "pyramid:0"
    assert expected["image_ids"][0] == "pyramid:0"
    assert _channel_names(oa) == expected["images"]["pyramid:0"]["channel_names"]
    meta = oa.data["pixels_meta"].as_py()
    assert meta["physical_size_x"] == pytest.approx(array["physical_size"]["x"])


@needs_ome_arrow
def test_tiff_series_other_than_first_is_refused(datasets: dict[str, Fixture]) -> None:
    fixture = datasets["pyramid"]
    assert fixture.expected["series_count"] == 2
    with pytest.raises(MetadataError, match="only the first series") as info:
        create_ome_arrow(fixture.path, image_path=1)
    assert str(fixture.path) in str(info.value)
    with pytest.raises(MetadataError, match="has 2 series"):
        create_ome_arrow(fixture.path, image_path="7")
    # series 0 by number is the default image
    explicit = create_ome_arrow(fixture.path, image_path="0")
    np.testing.assert_array_equal(_tczyx(explicit)[0, :, 0], tifffile.imread(fixture.path))


@needs_ome_arrow
@pytest.mark.parametrize("name", ["plate04", "plate05"])
def test_plate_field_path_pixels_equal_level0(datasets: dict[str, Fixture], name: str) -> None:
    fixture = datasets[name]
    expected = fixture.expected
    field = "A/1/0"
    image_id = f"{expected['dataset_id']}:{field}"
    assert image_id in expected["image_ids"]

    oa = create_ome_arrow(fixture.path / field)

    reference = _zarr_level0(fixture.path, field, expected["level_paths"][0])
    assert reference.shape == expected["shapes"][0]
    c, z, y, x = expected["shapes"][0]
    assert expected["axes"] == "czyx"
    pixels = _tczyx(oa)
    assert pixels.shape == (1, c, z, y, x)
    np.testing.assert_array_equal(pixels[0], reference)
    assert oa.data["id"].as_py() == image_id
    assert _channel_names(oa) == expected["channel_names"]


@needs_ome_arrow
def test_plate_root_with_image_path_selects_the_field(datasets: dict[str, Fixture]) -> None:
    fixture = datasets["plate04"]
    expected = fixture.expected
    field = "B/3/1"
    assert f"plate04:{field}" in expected["image_ids"]

    via_root = create_ome_arrow(fixture.path, image_path=field)
    via_path = create_ome_arrow(fixture.path / field)
    reference = _zarr_level0(fixture.path, field, expected["level_paths"][0])

    np.testing.assert_array_equal(_tczyx(via_root)[0], reference)
    np.testing.assert_array_equal(_tczyx(via_path), _tczyx(via_root))
    assert via_root.data["id"].as_py() == "plate04:B/3/1"
    custom = create_ome_arrow(fixture.path, image_path=field, image_id="run7:B03-1")
    assert custom.data["id"].as_py() == "run7:B03-1"


@needs_ome_arrow
def test_ngff05_image_at_store_root(datasets: dict[str, Fixture]) -> None:
    fixture = datasets["image05"]
    expected = fixture.expected
    oa = create_ome_arrow(fixture.path)

    level0 = expected["arrays"][expected["level_paths"][0]]
    reference = zarr.open_array(fixture.path, path=expected["level_paths"][0], mode="r")[:]
    assert reference.shape == level0["shape"]
    pixels = _tczyx(oa)
    assert expected["axes"] == "tczyx"
    assert pixels.shape == level0["shape"]
    np.testing.assert_array_equal(pixels, reference)
    assert oa.data["id"].as_py() == expected["dataset_id"]
    assert _channel_names(oa) == expected["channel_names"]


@needs_ome_arrow
def test_plate_and_well_roots_are_not_images(datasets: dict[str, Fixture]) -> None:
    plate = datasets["plate04"].path
    with pytest.raises(MetadataError, match="HCS plate") as info:
        create_ome_arrow(plate)
    assert "plate04.ome.zarr/A/1/0" in str(info.value)
    assert "image_path='A/1/0'" in str(info.value)
    with pytest.raises(MetadataError, match="HCS well") as info:
        create_ome_arrow(plate / "A" / "1")
    assert "1/0" in str(info.value)
    with pytest.raises(MetadataError, match="Zarr array"):
        create_ome_arrow(plate / "A" / "1" / "0" / datasets["plate04"].expected["level_paths"][0])
    with pytest.raises(StoreNotFoundError, match="C/9/0"):
        create_ome_arrow(plate, image_path="C/9/0")


@needs_ome_arrow
def test_missing_and_unsupported_inputs(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError) as info:
        create_ome_arrow(tmp_path / "absent.ome.tiff")
    assert isinstance(info.value, FileNotFoundError)
    notes = tmp_path / "notes.tif"
    notes.write_text("not a TIFF")
    with pytest.raises(MetadataError, match="not an image"):
        create_ome_arrow(notes)
    with pytest.raises(MetadataError, match="local files only"):
        create_ome_arrow("s3://bucket/plate.ome.zarr/A/1/0")


@needs_ome_arrow
def test_lossy_dtype_is_refused(tmp_path: Path) -> None:
    """ome-arrow stores uint16: float pixels are refused rather than clamped."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import ome_zarr.writer

    store = tmp_path / "float.ome.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=2)
    data = np.linspace(-1.0, 1.0, 2 * 16 * 16, dtype="float32").reshape(2, 16, 16)
    ome_zarr.writer.write_image(data, group, axes="cyx", scale_factors=[])
    with pytest.raises(MetadataError, match="float32") as info:
        create_ome_arrow(store)
    assert "without loss" in str(info.value)


# -- scan_ome_arrow: round trips through ome-arrow's Parquet writers -----------------


def _write_single_file(oa: object, out: Path) -> Path:
    _ome_arrow().to_ome_parquet(oa.data, str(out), column_name="ome_arrow")  # type: ignore[attr-defined]
    return out


def _write_dataset(oa: object, out: Path) -> Path:
    return Path(oa.export(how="parquet", out=str(out)))  # type: ignore[attr-defined]


@needs_ome_arrow
@pytest.mark.parametrize(
    ("source", "image"),
    [("pyramid", None), ("plate04", "A/2/1"), ("image05", None)],
)
@pytest.mark.parametrize("writer", [_write_single_file, _write_dataset], ids=["file", "dataset"])
def test_parquet_round_trip_scans_lazily(
    datasets: dict[str, Fixture],
    tmp_path: Path,
    source: str,
    image: str | None,
    writer: object,
) -> None:
    fixture = datasets[source]
    path = fixture.path / image if image else fixture.path
    oa = create_ome_arrow(path)
    original = _tczyx(oa)
    out = writer(oa, tmp_path / f"{source}.ome.parquet")  # type: ignore[operator]
    assert out.exists()

    lazy = scan_ome_arrow(out)
    assert isinstance(lazy, _ome_arrow().OMEArrow)  # type: ignore[attr-defined]
    assert lazy.is_lazy
    collected = lazy.collect()
    assert not collected.is_lazy
    np.testing.assert_array_equal(_tczyx(collected), original)

    if source == "pyramid":
        reference = tifffile.imread(fixture.path, series=0, level=0)
        np.testing.assert_array_equal(_tczyx(collected)[0, :, 0], reference)


@needs_ome_arrow
def test_single_file_lazy_tensor_view_reads_a_selection(
    datasets: dict[str, Fixture], tmp_path: Path
) -> None:
    fixture = datasets["plate04"]
    field = "A/1/0"
    out = _write_single_file(create_ome_arrow(fixture.path / field), tmp_path / "f.ome.parquet")
    reference = _zarr_level0(fixture.path, field, fixture.expected["level_paths"][0])

    lazy = scan_ome_arrow(out)
    view = lazy.tensor_view(c=1, layout="TCZYX")
    assert lazy.is_lazy
    np.testing.assert_array_equal(view.to_numpy()[0, 0], reference[1])


@needs_ome_arrow
def test_scan_of_source_images_is_lazy(datasets: dict[str, Fixture]) -> None:
    plate = datasets["plate04"]
    lazy = scan_ome_arrow(plate.path, image_path="A/1/0")
    assert lazy.is_lazy
    reference = _zarr_level0(plate.path, "A/1/0", plate.expected["level_paths"][0])
    np.testing.assert_array_equal(lazy.tensor_view(layout="TCZYX").to_numpy()[0], reference)

    tiff = scan_ome_arrow(datasets["pyramid"].path)
    assert tiff.is_lazy
    np.testing.assert_array_equal(
        tiff.tensor_view(layout="TCZYX").to_numpy()[0, :, 0],
        tifffile.imread(datasets["pyramid"].path, series=0, level=0),
    )


@needs_ome_arrow
def test_scan_rejects_what_ome_arrow_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        scan_ome_arrow(tmp_path / "absent.ome.parquet")
    folder = tmp_path / "plain.ome.parquet"
    folder.mkdir()
    with pytest.raises(MetadataError, match=r"_ome_arrow_dataset\.json"):
        scan_ome_arrow(folder)


@needs_ome_arrow
def test_parquet_inputs_take_no_image_selection(
    datasets: dict[str, Fixture], tmp_path: Path
) -> None:
    oa = create_ome_arrow(datasets["image05"].path)
    out = _write_single_file(oa, tmp_path / "i.ome.parquet")
    with pytest.raises(MetadataError, match="row_index"):
        scan_ome_arrow(out, image_path="0")
    # create_ome_arrow reads an OME-Arrow Parquet file eagerly with ome-arrow's defaults
    np.testing.assert_array_equal(_tczyx(create_ome_arrow(out)), _tczyx(oa))


# -- public API and the missing extra -------------------------------------------------


@needs_ome_arrow
def test_public_api_wrappers_delegate(datasets: dict[str, Fixture], tmp_path: Path) -> None:
    fixture = datasets["plate04"]
    oa = api.create_ome_arrow(fixture.path, image_path="A/1/0")
    assert oa.data["id"].as_py() == "plate04:A/1/0"
    out = _write_single_file(oa, tmp_path / "api.ome.parquet")
    lazy = api.scan_ome_arrow(out)
    assert lazy.is_lazy
    np.testing.assert_array_equal(_tczyx(lazy), _tczyx(oa))


@pytest.mark.parametrize(
    "call",
    [create_ome_arrow, scan_ome_arrow, api.create_ome_arrow, api.scan_ome_arrow],
    ids=["create", "scan", "api.create", "api.scan"],
)
def test_missing_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, datasets: dict[str, Fixture], call: object
) -> None:
    monkeypatch.setitem(sys.modules, "ome_arrow", None)
    with pytest.raises(MissingDependencyError) as info:
        call(datasets["pyramid"].path)  # type: ignore[operator]
    assert isinstance(info.value, ImportError)
    assert INSTALL_HINT in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)
