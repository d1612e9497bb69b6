"""The safety rules every layer shares: names, derived paths, metadata limits."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iceberg_bioimage import InvalidNameError, MetadataError, StoreNotFoundError
from iceberg_bioimage.io.storage import expand_glob
from iceberg_bioimage.models.limits import Limits, json_depth, load_json
from iceberg_bioimage.models.names import check_dataset_id, check_table_name, file_safe
from iceberg_bioimage.models.paths import (
    read_head_inside,
    read_heads_inside,
    relative_key,
    resolve_inside,
)

SEGMENTS = st.lists(st.sampled_from(["a", "b", ".", "..", "", "c d", "é"]), max_size=8)


# SPEC §2: any name a real file or folder carries is a legal derived id (Olympus
# scan^R files begin with "--W00001"); only separators, control characters, "."/".."
# and more than 200 characters are refused.
@pytest.mark.parametrize(
    "name",
    [
        "BR00116991",
        "plate 1",
        "A-1_x.v2",
        "é1",
        "--W00001--P00001--Z00000--T00000--cherry",
        "-x",
        ".hidden",
        "_x",
        "a:b",
        "x.",
        "x ",
        "a" * 200,
    ],
)
def test_legal_dataset_ids(name):
    assert check_dataset_id(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "a\\b", "a\nb", "a\x00b", "a\x7fb", "a" * 201]
)
def test_illegal_dataset_ids_are_refused_not_encoded(name):
    with pytest.raises(InvalidNameError, match="not a legal name"):
        check_dataset_id(name)


@pytest.mark.parametrize("name", ["../../escaped", "profiles", "a.b.c", "profiles./x", ".a.b"])
def test_illegal_table_names(name):
    with pytest.raises(InvalidNameError):
        check_table_name(name)


@given(st.text(max_size=40))
@settings(max_examples=500)
def test_a_legal_dataset_id_is_one_plain_path_segment(name):
    try:
        check_dataset_id(name)
    except InvalidNameError:
        return
    assert "/" not in name and "\\" not in name and name not in (".", "..")
    assert os.path.basename(name) == name
    # Its file-name form is one plain segment that no reader treats as hidden.
    safe = file_safe(name)
    assert os.path.basename(safe) == safe and not safe.startswith((".", "_"))
    assert safe.isascii() and "/" not in safe and "\\" not in safe


@given(SEGMENTS)
@settings(max_examples=500)
def test_relative_key_never_climbs(parts):
    path = "/".join(parts)
    try:
        key = relative_key(path)
    except ValueError:
        assert ".." in parts
        return
    assert ".." not in key.split("/") and not key.startswith("/")
    assert key == "/".join(p for p in parts if p not in ("", "."))


def test_resolve_inside_refuses_dotdot_and_symlinks_out(tmp_path):
    root = tmp_path / "root"
    (root / "inner").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "out").symlink_to(tmp_path / "outside")
    (root / "in").symlink_to(root / "inner")
    assert resolve_inside(root, "in") == (root / "inner").resolve()
    with pytest.raises(MetadataError, match="leaves its folder"):
        resolve_inside(root, "../outside")
    with pytest.raises(MetadataError, match="outside"):
        resolve_inside(root, "out")


def _answer(read):
    """A read's result, or its error's type and message."""
    try:
        return read()
    except MetadataError as error:
        return type(error), str(error)


def test_batched_head_reads_answer_as_one_by_one(tmp_path):
    """read_heads_inside opens files relative to their checked folder: same answers."""
    root = tmp_path / "root"
    (root / "a" / "sub").mkdir(parents=True)
    (root / "b").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.tif").write_bytes(b"S" * 100)
    (root / "a" / "x.tif").write_bytes(b"x" * 100)
    (root / "b" / "y.tif").write_bytes(b"y" * 50)
    (root / "a" / "in.tif").symlink_to(root / "b" / "y.tif")
    (root / "a" / "out.tif").symlink_to(tmp_path / "outside" / "secret.tif")
    (root / "c").symlink_to(tmp_path / "outside")  # a folder leading out
    (root / "d").symlink_to(root / "b")  # a folder staying in
    os.mkfifo(root / "a" / "fifo.tif")
    names = [
        "a/x.tif", "a/in.tif", "a/missing.tif", "a/sub", "b/y.tif", "c/secret.tif",
        "d/y.tif", "a/x.tif",
    ]  # fmt: skip
    jobs = [(str(root / name), 10, 20) for name in names]
    one_by_one = [_answer(lambda job=job: [read_head_inside(str(root), *job)]) for job in jobs]
    batched = [_answer(lambda job=job: read_heads_inside(str(root), [job])) for job in jobs]
    assert batched == one_by_one
    assert one_by_one[0] == [(b"x" * 20, 100)] and one_by_one[2] == [None]
    assert one_by_one[5][0] is MetadataError  # resolves outside the root
    ok = [job for job, answer in zip(jobs, one_by_one, strict=True) if isinstance(answer, list)]
    assert read_heads_inside(str(root), ok) == [read_head_inside(str(root), *job) for job in ok]
    for refused in ("a/out.tif", "a/fifo.tif"):
        job = (str(root / refused), 0, 8)
        assert _answer(lambda job=job: read_heads_inside(str(root), [job])) == _answer(
            lambda job=job: read_head_inside(str(root), *job)
        )
        with pytest.raises(MetadataError):
            read_heads_inside(str(root), [job])


def _depth(value):
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


JSON = st.recursive(
    st.none() | st.integers() | st.text(alphabet='ab"[]{}\\', max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=20,
)


@given(JSON)
@settings(max_examples=500)
def test_json_depth_matches_the_parsed_document(value):
    assert json_depth(json.dumps(value).encode()) == _depth(value)


def test_load_json_limits():
    limits = Limits(max_metadata_bytes=100, max_json_depth=4)
    assert load_json(b"[[[[1]]]]", "x", limits) == [[[[1]]]]
    with pytest.raises(MetadataError, match="deeper than 4"):
        load_json(b"[[[[[1]]]]]", "x", limits)
    with pytest.raises(MetadataError, match="metadata limit"):
        load_json(b" " * 101, "x", limits)
    with pytest.raises(MetadataError, match="invalid JSON"):
        load_json(b"\xff{", "x", limits)
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(MetadataError, match="deeper than 64"):
        load_json(deep, "x", Limits(max_metadata_bytes=10**6))


def test_limits_from_environment(monkeypatch):
    monkeypatch.setenv("ICEBERG_BIOIMAGE_MAX_CHUNK_ROWS", "1_000")
    assert Limits.from_env().max_chunk_rows == 1000
    monkeypatch.setenv("ICEBERG_BIOIMAGE_MAX_JSON_DEPTH", "deep")
    with pytest.raises(MetadataError, match="ICEBERG_BIOIMAGE_MAX_JSON_DEPTH"):
        Limits.from_env()


def test_glob_stays_inside_its_folder(tmp_path):
    folder = tmp_path / "plates"
    (folder / "a.ome.zarr").mkdir(parents=True)
    (tmp_path / "elsewhere.ome.zarr").mkdir()
    assert expand_glob(folder, "*.ome.zarr") == [str(folder / "a.ome.zarr")]
    with pytest.raises(StoreNotFoundError, match="inside its folder"):
        expand_glob(folder, "../*.ome.zarr")
    (folder / "b.ome.zarr").symlink_to(tmp_path / "elsewhere.ome.zarr")
    with pytest.raises(StoreNotFoundError, match="outside"):
        expand_glob(folder, "*.ome.zarr")


def test_load_json_refuses_lone_surrogates():
    with pytest.raises(MetadataError, match="unpaired UTF-16 surrogate"):
        load_json(b'{"a": ["\\ud800"]}', "x", Limits())
    assert load_json(b'"\\ud83d\\ude00"', "x", Limits()) == "\U0001f600"
