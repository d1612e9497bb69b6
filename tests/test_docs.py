"""The documentation runs: every ```python / ```bash block of docs/*.md, in order.

Each document runs in its own fresh folder (the working directory of every block), with
``HOME`` and ``ICEBERG_BIOIMAGE_WAREHOUSE`` inside it and no ``PYICEBERG_*`` settings
inherited, so a block may use files written by the blocks before it in the same
document (e.g. ``iceberg-bioimage sample-data sample``) and nothing else. Python blocks
run with this interpreter, bash blocks with ``bash -e -o pipefail`` and the venv's
``bin`` first on ``PATH`` (so ``iceberg-bioimage`` resolves). Blocks are separate
processes: files carry over from one block to the next, shell variables do not.

Fence options (after the language, e.g. ```python requires=s3):

- ``skip``: never run (only for blocks needing services the test cannot provide,
  such as PyPI or a REST catalog server).
- ``requires=postgres``: runs when ``ICEBERG_BIOIMAGE_TEST_PG_URI`` (a SQLAlchemy URI,
  ``postgresql+psycopg2://user@host:port/db``) is set. The block gets ``CATALOG_DB_URL``,
  that URI pointed at a fresh PostgreSQL schema dropped afterwards, so runs never see
  each other's catalog rows.
- ``requires=s3``: runs when ``ICEBERG_BIOIMAGE_TEST_S3_ENDPOINT`` (an S3-compatible
  endpoint URL, e.g. moto or MinIO) is set. The block gets ``AWS_ENDPOINT_URL`` and
  ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (``testing`` unless set), region
  ``us-east-1``; the bucket ``bioimage-lake`` is created first.
- ``requires=<module>``: runs when the Python module is importable (e.g. ``polars``).

Every warehouse the blocks of a document wrote (each folder holding a
``warehouse_manifest.json``) must pass ``validate-warehouse`` once they have run.

Documents run concurrently (each in its own folder) to keep the whole file fast;
``docs/tables.md`` must also equal what ``docs/_generate_tables.py`` renders.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from iceberg_bioimage.models.warehouse import MANIFEST_NAME
from written_warehouses import rejections

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DOCUMENTS = sorted(DOCS.glob("*.md"))
BIN = Path(sys.executable).parent
PG_ENV = "ICEBERG_BIOIMAGE_TEST_PG_URI"
S3_ENV = "ICEBERG_BIOIMAGE_TEST_S3_ENDPOINT"
S3_BUCKET = "bioimage-lake"
BLOCK_TIMEOUT = 180
RUNNERS = ("python", "bash")
#: ```lang options — an opening fence, possibly indented (then the body is too).
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>[^`\n]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a document."""

    document: Path
    line: int
    language: str
    options: tuple[str, ...]
    code: str

    @property
    def label(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line} ```{self.language}"

    @property
    def requires(self) -> str | None:
        found = [o.split("=", 1)[1] for o in self.options if o.startswith("requires=")]
        return found[0] if found else None


@dataclass
class Outcome:
    """What running one document did, block by block."""

    ran: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failure: str | None = None
    seconds: float = 0.0


def parse_blocks(document: Path) -> list[Block]:
    """Every fenced block of ``document`` with its language, options and first line."""
    lines = document.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, ticks = opening["indent"], opening["ticks"]
        words = opening["info"].split()
        body: list[str] = []
        index += 1
        while index < len(lines) and not (
            lines[index].strip().startswith(ticks) and not lines[index].strip().strip("`")
        ):
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        start = index - len(body) + 1  # 1-based line of the first code line
        index += 1
        if words:
            blocks.append(
                Block(document, start, words[0], tuple(words[1:]), "\n".join(body) + "\n")
            )
    return blocks


def runnable(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.language in RUNNERS]


def skip_reason(block: Block) -> str | None:
    """Why ``block`` cannot run here, or None."""
    if "skip" in block.options:
        return "marked skip"
    requirement = block.requires
    if requirement == "postgres":
        return None if os.environ.get(PG_ENV) else f"{PG_ENV} is not set"
    if requirement == "s3":
        return None if os.environ.get(S3_ENV) else f"{S3_ENV} is not set"
    if requirement and importlib.util.find_spec(requirement) is None:
        return f"Python module {requirement!r} is not installed"
    return None


def base_environment(work: Path, home: Path) -> dict[str, str]:
    """The environment of every block: isolated HOME, catalog and PyIceberg settings."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("PYICEBERG_", "ICEBERG_BIOIMAGE_", "AWS_"))
    }
    return {
        **inherited,
        "HOME": str(home),
        "ICEBERG_BIOIMAGE_WAREHOUSE": str(work / "iceberg-warehouse"),
        "PATH": os.pathsep.join([str(BIN), inherited.get("PATH", "")]),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "NO_COLOR": "1",
        "COLUMNS": "120",
    }


def s3_environment() -> dict[str, str]:
    """Credentials and endpoint of the test object store; creates the docs' bucket."""
    import s3fs

    env = {
        "AWS_ENDPOINT_URL": os.environ[S3_ENV],
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    fs = s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=env["AWS_ENDPOINT_URL"],
        client_kwargs={"region_name": "us-east-1"},
        skip_instance_cache=True,
    )
    if not fs.exists(S3_BUCKET):
        # a bare create_bucket: s3fs.mkdir would send LocationConstraint=us-east-1,
        # which S3 rejects
        fs.call_s3("create_bucket", Bucket=S3_BUCKET)
    return env


class PostgresSchema:
    """A fresh schema in the test database; its URI routes the catalog tables into it."""

    def __init__(self) -> None:
        import sqlalchemy as sa

        self.name = f"docs_{uuid.uuid4().hex[:12]}"
        self.engine = sa.create_engine(os.environ[PG_ENV])
        with self.engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{self.name}"'))
        url = sa.engine.make_url(os.environ[PG_ENV])
        self.uri = url.update_query_dict(
            {"options": f"-csearch_path={self.name}"}
        ).render_as_string(hide_password=False)

    def drop(self) -> None:
        import sqlalchemy as sa

        with self.engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
        self.engine.dispose()


def run_block(block: Block, work: Path, scripts: Path, env: dict[str, str], n: int) -> str | None:
    """Run one block in ``work``; the failure report, or None when it exits 0."""
    suffix = ".py" if block.language == "python" else ".sh"
    script = scripts / f"block{n:02d}{suffix}"
    script.write_text(block.code, encoding="utf-8")
    command = (
        [sys.executable, str(script)]
        if block.language == "python"
        else ["bash", "-e", "-o", "pipefail", str(script)]
    )
    try:
        done = subprocess.run(
            command,
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        return f"{block.label} timed out after {BLOCK_TIMEOUT} s\n{error.stdout}\n{error.stderr}"
    if done.returncode == 0:
        return None
    numbered = "\n".join(
        f"{block.line + i:5d} | {line}" for i, line in enumerate(block.code.splitlines())
    )
    return (
        f"{block.label} exited {done.returncode}\n"
        f"--- block ---\n{numbered}\n"
        f"--- stdout (tail) ---\n{done.stdout[-4000:]}\n"
        f"--- stderr (tail) ---\n{done.stderr[-6000:]}"
    )


def run_document(document: Path) -> Outcome:
    """Run the runnable blocks of ``document`` in order, stopping at the first failure."""
    outcome = Outcome()
    started = time.perf_counter()
    blocks = runnable(parse_blocks(document))
    with tempfile.TemporaryDirectory(prefix=f"docs-{document.stem}-") as folder:
        work, home, scripts = (Path(folder) / name for name in ("work", "home", "blocks"))
        for path in (work, home, scripts):
            path.mkdir()
        env = base_environment(work, home)
        schema: PostgresSchema | None = None
        try:
            for n, block in enumerate(blocks):
                reason = skip_reason(block)
                if reason:
                    outcome.skipped[block.label] = reason
                    continue
                block_env = dict(env)
                if block.requires == "s3":
                    block_env.update(s3_environment())
                if block.requires == "postgres":
                    schema = schema or PostgresSchema()
                    block_env["CATALOG_DB_URL"] = schema.uri
                failure = run_block(block, work, scripts, block_env, n)
                if failure:
                    outcome.failure = failure
                    break
                outcome.ran.append(block.label)
            else:  # every warehouse the blocks wrote validates
                written = sorted(work.rglob(MANIFEST_NAME))
                if rejected := rejections(m.parent for m in written):
                    outcome.failure = "validate-warehouse rejects:\n" + "\n".join(rejected)
        finally:
            if schema is not None:
                schema.drop()
    outcome.seconds = time.perf_counter() - started
    return outcome


# -- tests -----------------------------------------------------------------------------


def _selected_documents(session: pytest.Session) -> list[Path]:
    """Documents whose runs the selected tests await (all of them by default)."""
    documents = set()
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "document_runs" not in getattr(item, "fixturenames", ()):
            continue
        document = callspec.params.get("document")
        block = callspec.params.get("block")
        documents.add(block.document if isinstance(block, Block) else document)
    return sorted(d for d in documents if isinstance(d, Path))


class DocumentRuns(dict):
    """Document → future of its run; a document not started yet starts on first use."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        super().__init__()
        self.pool = pool

    def __missing__(self, document: Path) -> Future[Outcome]:
        self[document] = future = self.pool.submit(run_document, document)
        return future


def _service(request: pytest.FixtureRequest, fixture: str) -> str | None:
    """The session's PostgreSQL URI / S3 endpoint, or None where it cannot run here."""
    try:
        return request.getfixturevalue(fixture)
    except pytest.skip.Exception:
        return None


@pytest.fixture(scope="module")
def document_runs(request: pytest.FixtureRequest) -> Iterator[DocumentRuns]:
    """Start every selected document at once (each in its own folder); tests await theirs.

    Service blocks use the session's real PostgreSQL and moto S3 servers unless the
    environment already names others.
    """
    saved = {name: os.environ.get(name) for name in (PG_ENV, S3_ENV)}
    for name, fixture in ((PG_ENV, "pg_uri"), (S3_ENV, "s3_endpoint")):
        if not os.environ.get(name) and (value := _service(request, fixture)):
            os.environ[name] = value
    documents = _selected_documents(request.session) or DOCUMENTS
    try:
        with ThreadPoolExecutor(max_workers=max(2, len(documents))) as pool:
            runs = DocumentRuns(pool)
            for document in documents:
                runs[document]
            yield runs
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_docs_exist() -> None:
    names = {d.name for d in DOCUMENTS}
    assert {"getting-started.md", "catalog-setup.md", "cytomining.md", "tables.md"} <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_fences_are_well_formed(document: Path) -> None:
    """Runnable blocks use known options and start at column 0 (so they really run)."""
    problems = []
    for block in parse_blocks(document):
        if block.language not in RUNNERS:
            continue
        for option in block.options:
            if option != "skip" and not re.fullmatch(r"requires=[A-Za-z_][\w.]*", option):
                problems.append(f"{block.label}: unknown fence option {option!r}")
        fence = document.read_text(encoding="utf-8").splitlines()[block.line - 2]
        if fence.startswith((" ", "\t")):
            problems.append(f"{block.label}: indented fence; put runnable blocks at column 0")
    assert not problems, "\n".join(problems)


def heading_anchors(document: Path) -> set[str]:
    """GitHub-style anchors of the document's headings (outside code blocks)."""
    anchors, in_code = set(), False
    for line in document.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_relative_links_resolve(document: Path) -> None:
    """Links to other docs point at existing files and, with a #fragment, headings."""
    text = document.read_text(encoding="utf-8")
    problems = []
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        linked = (document.parent / target) if target else document
        if not linked.exists():
            problems.append(f"missing file {target}")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
            problems.append(f"no heading #{anchor} in {linked.name}")
    assert not problems, f"{document.name}: " + "; ".join(problems)


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_document_blocks_run(document: Path, document_runs: DocumentRuns) -> None:
    outcome = document_runs[document].result()
    if outcome.failure:
        pytest.fail(
            f"{document.name}: a documented block failed (after {len(outcome.ran)} that "
            f"passed)\n{outcome.failure}",
            pytrace=False,
        )
    if not outcome.ran and outcome.skipped:
        pytest.skip("; ".join(f"{k}: {v}" for k, v in outcome.skipped.items()))


SERVICE_BLOCKS = [
    block
    for document in DOCUMENTS
    for block in runnable(parse_blocks(document))
    if block.requires and "skip" not in block.options
]


@pytest.mark.parametrize(
    "block",
    SERVICE_BLOCKS,
    ids=[f"{b.document.name}:{b.line}-{b.requires}" for b in SERVICE_BLOCKS],
)
def test_service_block(block: Block, document_runs: DocumentRuns) -> None:
    """Blocks needing PostgreSQL, S3 or an optional module: run, or say why not."""
    outcome = document_runs[block.document].result()
    if block.label in outcome.skipped:
        pytest.skip(f"{block.label}: {outcome.skipped[block.label]}")
    if block.label not in outcome.ran:
        pytest.fail(f"{block.label} did not run: an earlier block of the document failed")


def test_tables_reference_is_up_to_date() -> None:
    """docs/tables.md equals what docs/_generate_tables.py renders from the schemas."""
    spec = importlib.util.spec_from_file_location("_generate_tables", DOCS / "_generate_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render_page()
    current = (DOCS / "tables.md").read_text(encoding="utf-8")
    assert current == expected, (
        "docs/tables.md is out of date with iceberg_bioimage.models.schemas or the sample "
        "scan: run `uv run python docs/_generate_tables.py` and commit the result"
    )
