"""Every bad input of ``tests/bad_inputs.py`` through the real CLI, strictly.

Each case must give a named error (exit 2, one ``error: ...`` line naming the
file or name), or a correct partial result with a ``warning:`` line (exit 0),
or plain success; never a traceback, within 10 s of CPU time (and 120 s of wall time,
for a run that blocks without computing: CPU time bounds the work, so another job's
load on a shared machine cannot fail a case). Around every run the whole
generated tree is snapshotted: nothing outside the case folder may be created,
changed or deleted, and the outside sentinels (``OUTDIR/outside/**`` and each
case's own sentinels) may not be read either. Reads are caught two ways: their
access times (set older than their modification times, so the kernel's
``relatime`` rule updates them on any read; checked when the file system keeps
access times) and a unique marker string inside them that must never reach the
CLI's output or any file the run writes.

Cases that would hang or exhaust memory when handled wrongly (FIFOs,
``/dev/zero``, huge chunk grids, deep JSON...) first run in a subprocess
(``python -m iceberg_bioimage``), killed past 10 s of CPU time or 120 s of wall time,
with its peak RSS measured by polling its ``VmHWM``; only when that run ends normally
are they run in-process too.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bad_inputs import OUTSIDE, Case, build_cases, iter_outside, read_marker
from iceberg_bioimage.cli import main

CPU_LIMIT_S = 10.0
WALL_LIMIT_S = 120.0
RSS_LIMIT_KIB = 1024 * 1024  # 1 GiB
LIMIT_VARIABLES = (
    "ICEBERG_BIOIMAGE_MAX_METADATA_BYTES",
    "ICEBERG_BIOIMAGE_MAX_JSON_DEPTH",
    "ICEBERG_BIOIMAGE_MAX_CHUNK_ROWS",
    "ICEBERG_BIOIMAGE_MAX_TABLE_ROWS",
    "ICEBERG_BIOIMAGE_MAX_LINE_BYTES",
    "ICEBERG_BIOIMAGE_MAX_VALUE_CHARS",
    "ICEBERG_BIOIMAGE_DASK_TIMEOUT",
)


def _collect_cases() -> list[Case]:
    """The case list, for parametrisation (built once in a throwaway folder)."""
    with tempfile.TemporaryDirectory(prefix="bad-inputs-ids-") as scratch:
        return build_cases(Path(scratch) / "bad")


CASES = {case.case_id: case for case in _collect_cases()}
HAZARDS = [case_id for case_id, case in CASES.items() if case.hazard]


# --------------------------------------------------------------------------- #
# the generated tree and its snapshots
# --------------------------------------------------------------------------- #

Entry = tuple[int, int, int, int]  # file type, size, mtime_ns, inode


def _kind(mode: int) -> int:
    return stat.S_IFMT(mode)


def _hash(path: Path) -> str:
    """SHA-256 of a file, read with O_NOATIME so hashing leaves its access time alone."""
    flags = os.O_RDONLY | getattr(os, "O_NOATIME", 0) | os.O_NONBLOCK
    fd = os.open(path, flags)
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def _atime_is_kept(folder: Path) -> bool:
    """Whether reading a file whose atime is older than its mtime updates the atime here."""
    probe = folder / "atime-probe"
    probe.write_text("probe")
    info = probe.stat()
    os.utime(probe, ns=(info.st_mtime_ns - 10**9, info.st_mtime_ns))
    before = probe.stat().st_atime_ns
    probe.read_text()
    kept = probe.stat().st_atime_ns != before
    probe.unlink()
    return kept


@dataclass
class Snapshot:
    """Every entry of the tree (sentinel folders not listed) and the sentinels' state."""

    entries: dict[str, Entry]
    sentinels: dict[str, tuple[int, int, int, int, int]]


@dataclass
class BadTree:
    """The generated cases below ``root`` and what a run may not touch."""

    root: Path
    cases: dict[str, Case]
    marker: str
    atime_kept: bool
    #: Sentinel paths relative to ``root`` → content hash (``""`` for folders).
    sentinel_hashes: dict[str, str] = field(default_factory=dict)
    sentinel_dirs: set[str] = field(default_factory=set)
    subprocess_runs: dict[str, SubprocessRun] = field(default_factory=dict)
    scratch: Path | None = None

    def add_sentinels(self, paths: list[Path]) -> None:
        """Record sentinels: hash files, then make their access times tell on a read."""
        for path in paths:
            rel = path.relative_to(self.root).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                continue
            if stat.S_ISDIR(info.st_mode):
                self.sentinel_dirs.add(rel)
                self.sentinel_hashes[rel] = ""
            else:
                self.sentinel_hashes[rel] = _hash(path)
        for rel in self.sentinel_hashes:
            path = self.root / rel
            info = path.lstat()
            os.utime(path, ns=(info.st_mtime_ns - 10**9, info.st_mtime_ns))

    def snapshot(self) -> Snapshot:
        """Walk the tree (without listing sentinel folders) and stat every sentinel."""
        entries: dict[str, Entry] = {}
        stack = [self.root]
        while stack:
            folder = stack.pop()
            with os.scandir(folder) as listing:
                for item in listing:
                    rel = os.path.relpath(item.path, self.root)
                    info = item.stat(follow_symlinks=False)
                    entries[rel] = (
                        _kind(info.st_mode),
                        info.st_size,
                        info.st_mtime_ns,
                        info.st_ino,
                    )
                    if stat.S_ISDIR(info.st_mode) and rel not in self.sentinel_dirs:
                        stack.append(Path(item.path))
        sentinels = {}
        for rel in self.sentinel_hashes:
            try:
                info = (self.root / rel).lstat()
            except FileNotFoundError:
                continue
            sentinels[rel] = (
                _kind(info.st_mode),
                info.st_size,
                info.st_mtime_ns,
                info.st_ino,
                info.st_atime_ns,
            )
        return Snapshot(entries, sentinels)

    def violations(self, case: Case, before: Snapshot, after: Snapshot, output: str) -> list[str]:
        """What the run did outside its case folder, or to / with the sentinels."""
        problems: list[str] = []
        inside = case.case_id

        def in_case(rel: str) -> bool:
            return rel == inside or rel.startswith(inside + os.sep)

        outside_keys = {k for k in before.entries.keys() | after.entries.keys() if not in_case(k)}
        for key in sorted(outside_keys):
            old, new = before.entries.get(key), after.entries.get(key)
            if old is None:
                problems.append(f"created outside the case folder: {key}")
            elif new is None:
                problems.append(f"deleted outside the case folder: {key}")
            elif old != new:
                problems.append(f"changed outside the case folder: {key}")
        for rel, expected_hash in self.sentinel_hashes.items():
            old, new = before.sentinels.get(rel), after.sentinels.get(rel)
            if old is None:
                continue
            if new is None:
                problems.append(f"sentinel deleted: {rel}")
                continue
            if old[:4] != new[:4]:
                problems.append(f"sentinel changed (type/size/mtime/inode): {rel}")
            if self.atime_kept and old[4] != new[4]:
                what = "listed" if rel in self.sentinel_dirs else "read"
                problems.append(f"sentinel {what} (its access time moved): {rel}")
            if expected_hash and _hash(self.root / rel) != expected_hash:
                problems.append(f"sentinel content changed: {rel}")
            self._reset_atime(rel)
        if self.marker in output:
            problems.append("the outside marker is in the CLI output: an outside file was read")
        for key in sorted(k for k in after.entries if in_case(k)):
            entry = after.entries[key]
            if entry[0] != stat.S_IFREG or before.entries.get(key) == entry:
                continue
            if key.replace(os.sep, "/") in self.sentinel_hashes:
                continue
            if self._holds_marker(self.root / key):
                problems.append(f"the outside marker was written into {key}")
        return problems

    def _reset_atime(self, rel: str) -> None:
        path = self.root / rel
        info = path.lstat()
        if info.st_atime_ns >= info.st_mtime_ns:
            os.utime(path, ns=(info.st_mtime_ns - 10**9, info.st_mtime_ns))

    def _holds_marker(self, path: Path) -> bool:
        needle = self.marker.encode()
        if path.suffix == ".parquet":
            try:
                return self.marker in str(pq.read_table(path).to_pylist())
            except Exception:  # not readable as Parquet: look at the bytes
                pass
        with open(path, "rb") as handle:
            return needle in handle.read(256 * 2**20)

    @contextmanager
    def guard(self, case: Case, problems: list[str]) -> Iterator[list[str]]:
        """Snapshot around a run; the run appends its output to the yielded list."""
        outputs: list[str] = []
        before = self.snapshot()
        yield outputs
        after = self.snapshot()
        problems.extend(self.violations(case, before, after, "\n".join(outputs)))

    def subprocess_run(self, case: Case) -> SubprocessRun:
        """Run ``case`` once in a guarded subprocess (cached for the session)."""
        if case.case_id not in self.subprocess_runs:
            assert self.scratch is not None
            problems: list[str] = []
            with self.guard(case, problems) as outputs:
                run = _run_subprocess(case, self.root / case.case_id, self.scratch)
                outputs.extend([run.stdout, run.stderr])
            run.violations = problems
            self.subprocess_runs[case.case_id] = run
        return self.subprocess_runs[case.case_id]


@pytest.fixture(scope="session")
def bad_tree(tmp_path_factory: pytest.TempPathFactory) -> BadTree:
    """Every case, generated once per session, with its outside sentinels recorded."""
    root = tmp_path_factory.mktemp("bad-inputs")
    cases = {case.case_id: case for case in build_cases(root)}
    assert list(cases) == list(CASES), "the generator is not deterministic"
    tree = BadTree(
        root=root,
        cases=cases,
        marker=read_marker(root),
        atime_kept=_atime_is_kept(tmp_path_factory.mktemp("atime")),
        scratch=tmp_path_factory.mktemp("bad-inputs-runs"),
    )
    sentinels = [*iter_outside(root), root / "MARKER"]
    for case in cases.values():
        for rel in case.sentinels:
            base = root / case.case_id / rel
            sentinels.append(base)
            for folder, dirs, files in os.walk(base):
                sentinels.extend(Path(folder, name) for name in dirs + files)
    tree.add_sentinels(sentinels)
    assert (root / OUTSIDE).is_dir()
    return tree


# --------------------------------------------------------------------------- #
# running the CLI
# --------------------------------------------------------------------------- #


def _environment(case: Case, case_dir: Path) -> dict[str, str | None]:
    env: dict[str, str | None] = dict.fromkeys(LIMIT_VARIABLES)
    env["ICEBERG_BIOIMAGE_WAREHOUSE"] = str(case_dir / "iceberg-warehouse")
    env.update(case.env)
    return env


def _outcome_problems(
    case: Case, code: int | None, stdout: str, stderr: str, cpu: float, wall: float
) -> list[str]:
    """How a run's exit code and output differ from what the case expects."""
    problems = []
    expected_code = 2 if case.expect == "error" else 0
    if code != expected_code:
        problems.append(f"exit code {code}, expected {expected_code}")
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    warnings = [line for line in lines if line.startswith("warning: ")]
    if case.expect == "error":
        if len(errors) != 1:
            problems.append(f"{len(errors)} 'error:' lines, expected exactly one")
        elif case.names not in errors[0]:
            problems.append(f"the error line does not name {case.names!r}")
    else:
        if errors:
            problems.append("an 'error:' line on a run that should succeed")
        if case.expect == "warning":
            if not warnings:
                problems.append("no 'warning:' line")
            elif case.names and not any(case.names in line for line in warnings):
                problems.append(f"no 'warning:' line names {case.names!r}")
        elif warnings:
            problems.append("a 'warning:' line on a run that should be clean")
    stray = [line for line in lines if not line.startswith(("error: ", "warning: ", "note: "))]
    if stray:
        problems.append(f"stderr lines that are not error/warning/note lines: {stray[:3]}")
    if "Traceback" in stdout or "Traceback" in stderr:
        problems.append("a traceback in the output")
    if cpu >= CPU_LIMIT_S:
        problems.append(f"used {cpu:.1f} s of CPU time (limit {CPU_LIMIT_S:.0f} s)")
    if wall >= WALL_LIMIT_S:
        problems.append(f"took {wall:.1f} s (limit {WALL_LIMIT_S:.0f} s)")
    return problems


def _report(case: Case, problems: list[str], stderr: str) -> str:
    tail = "\n".join(stderr.strip().splitlines()[-3:]) or "<empty stderr>"
    return (
        f"{case.case_id} ({case.description}): iceberg-bioimage {' '.join(case.argv)}\n"
        + "".join(f"  - {p}\n" for p in problems)
        + f"  stderr: {tail}"
    )


@dataclass
class SubprocessRun:
    """A guarded ``python -m iceberg_bioimage`` run."""

    returncode: int | None
    stdout: str
    stderr: str
    cpu: float
    wall: float
    maxrss_kib: int
    killed: str = ""
    violations: list[str] = field(default_factory=list)


def _memory_kib(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of the child once it runs our CLI, else ``(0, 0)``.

    Before ``exec`` the child is a copy of this (large, long-lived) test worker, and
    ``wait4``'s ``ru_maxrss`` keeps that copy's size too; after ``exec`` the kernel starts
    the high-water mark anew, so only the CLI's own memory is counted.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            if b"iceberg_bioimage" not in handle.read():
                return 0, 0
        values = {}
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line.split(":")[0]] = int(line.split()[1])
        return values.get("VmRSS", 0), values.get("VmHWM", 0)
    except (OSError, ValueError):
        return 0, 0


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, every thread) the child has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_subprocess(case: Case, case_dir: Path, scratch: Path) -> SubprocessRun:
    """Run the case in a child; kill it past its CPU or wall limit or 1 GiB RSS.

    Returns its outcome, CPU and wall seconds and peak RSS (VmHWM).
    """
    env = {k: v for k, v in os.environ.items() if k not in LIMIT_VARIABLES}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    env.update({k: v for k, v in _environment(case, case_dir).items() if v is not None})
    out_path = scratch / f"{case.case_id}.stdout"
    err_path = scratch / f"{case.case_id}.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "iceberg_bioimage", *case.argv],
            cwd=case_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        killed = ""
        peak = 0
        while True:
            rss, high = _memory_kib(child.pid)
            peak = max(peak, high)
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.monotonic() - start
            if not killed and _cpu_seconds(child.pid) > CPU_LIMIT_S:
                killed = f"was killed after {CPU_LIMIT_S:.0f} s of CPU time (a runaway)"
                os.kill(child.pid, signal.SIGKILL)
            elif not killed and elapsed > WALL_LIMIT_S:
                killed = f"was killed after {WALL_LIMIT_S:.0f} s (hung)"
                os.kill(child.pid, signal.SIGKILL)
            elif not killed and rss > RSS_LIMIT_KIB:
                killed = "was killed at over 1 GiB RSS"
                os.kill(child.pid, signal.SIGKILL)
            time.sleep(0.01)
        wall = time.monotonic() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 above
    return SubprocessRun(
        returncode=None if killed else child.returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        cpu=usage.ru_utime + usage.ru_stime,
        wall=wall,
        maxrss_kib=peak,
        killed=killed,
    )


# --------------------------------------------------------------------------- #
# the tests
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input(case_id: str, bad_tree: BadTree, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process CLI run: the expected outcome, one-line errors, nothing outside touched."""
    case = bad_tree.cases[case_id]
    case_dir = bad_tree.root / case_id
    if case.hazard:
        probe = bad_tree.subprocess_run(case)
        if probe.killed:
            pytest.fail(
                _report(
                    case, [f"not run in-process: in a subprocess it {probe.killed}"], probe.stderr
                ),
                pytrace=False,
            )
    monkeypatch.chdir(case_dir)
    problems: list[str] = []
    with bad_tree.guard(case, problems) as outputs:
        start, start_cpu = time.monotonic(), time.process_time()
        result = CliRunner().invoke(main, case.argv, env=_environment(case, case_dir))
        wall, cpu = time.monotonic() - start, time.process_time() - start_cpu
        outputs.extend([result.stdout, result.stderr])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problems.append(
            f"uncaught {type(result.exception).__name__}: {result.exception} "
            "(a traceback in a real run)"
        )
    problems[:0] = _outcome_problems(
        case, result.exit_code, result.stdout, result.stderr, cpu, wall
    )
    if problems:
        pytest.fail(_report(case, problems, result.stderr), pytrace=False)


@pytest.mark.parametrize("case_id", HAZARDS)
def test_bad_input_resources_in_subprocess(case_id: str, bad_tree: BadTree) -> None:
    """``python -m iceberg_bioimage``: under 10 s of CPU, 1 GiB peak RSS, the right outcome."""
    case = bad_tree.cases[case_id]
    run = bad_tree.subprocess_run(case)
    problems = [f"the child {run.killed}"] if run.killed else []
    problems += _outcome_problems(case, run.returncode, run.stdout, run.stderr, run.cpu, run.wall)
    if run.maxrss_kib >= RSS_LIMIT_KIB:
        problems.append(f"peak RSS {run.maxrss_kib / 1024:.0f} MiB (limit 1024 MiB)")
    problems += run.violations
    if problems:
        pytest.fail(_report(case, problems, run.stderr), pytrace=False)


def test_enough_cases_per_class() -> None:
    """At least 60 cases, several per input class."""
    counts: dict[str, int] = {}
    for case in CASES.values():
        counts[case.cls] = counts.get(case.cls, 0) + 1
    assert len(CASES) >= 60
    assert all(count >= 3 for count in counts.values()), counts
    assert {c.expect for c in CASES.values()} == {"error", "warning", "ok"}


def test_the_guard_sees_reads_writes_and_leaks(bad_tree: BadTree) -> None:
    """Negative control: a run that reads, writes and leaks outside is caught."""
    case = next(iter(bad_tree.cases.values()))
    problems: list[str] = []
    created = bad_tree.root / "escaped-by-guard-test"
    with bad_tree.guard(case, problems) as outputs:
        with open(bad_tree.root / OUTSIDE / "victim.txt") as handle:
            outputs.append(handle.read())
        created.write_text("x")
    created.unlink()
    assert "created outside the case folder: escaped-by-guard-test" in problems
    assert any("outside marker is in the CLI output" in p for p in problems)
    if bad_tree.atime_kept:
        assert "sentinel read (its access time moved): outside/victim.txt" in problems
    clean: list[str] = []
    with bad_tree.guard(case, clean):
        pass
    assert clean == []
