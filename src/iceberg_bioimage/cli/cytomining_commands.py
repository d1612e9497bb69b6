"""Profiles and the Cytomining warehouse: contract, joins, exports, validation."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from iceberg_bioimage import api
from iceberg_bioimage.cli.catalog_commands import _catalog, catalog_option, namespace_option
from iceberg_bioimage.cli.file_set_options import file_set_options
from iceberg_bioimage.cli.output import (
    command_options,
    emit_json,
    facts_table,
    fail,
    print_warnings,
    stdout,
    working,
)
from iceberg_bioimage.cli.profile_options import profile_source_options
from iceberg_bioimage.cli.storage_options import storage_option
from iceberg_bioimage.exceptions import StoreNotFoundError, WarehouseError
from iceberg_bioimage.models.options import ProfileOptions, StoreOptions
from iceberg_bioimage.models.warehouse import TABLE_SPECS

if TYPE_CHECKING:
    import pyarrow as pa

    from iceberg_bioimage.models.file_sets import FileSetOptions

# -- Cytomining: contract, joins, warehouse -------------------------------------

profile_dataset_option = click.option(
    "--profile-dataset-id",
    help="Dataset id for profile rows that have no dataset_id column.",
)
aliases_option = click.option(
    "--aliases",
    "aliases_path",
    type=click.Path(dir_okay=False),
    help="TOML file with extra column aliases under [microscopy.aliases].",
)


def _alias_map(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    return dict(api.load_profile_column_aliases(path))


def _with_aliases(options: ProfileOptions, path: str | None) -> ProfileOptions:
    """The profile options with the aliases of the ``--aliases`` file."""
    return dataclasses.replace(options, alias_map=_alias_map(path))


@click.command("validate-contract")
@click.argument("profiles")
@profile_dataset_option
@aliases_option
@click.option("--compartment", help="Table of a multi-table source (cells, nuclei, image…).")
@click.option(
    "--image-table",
    type=click.Path(dir_okay=False),
    help="Image table (Image.csv…) for object rows keyed only by ImageNumber.",
)
@command_options
def validate_contract(
    profiles: str,
    profile_dataset_id: str | None,
    aliases_path: str | None,
    compartment: str | None,
    image_table: str | None,
    as_json: bool,
) -> None:
    """Check profiles (a table, CellProfiler folder(s) or SQLite) against the join contract.

    Object tables keyed by ImageNumber are checked with their image's keys, which
    the Image table supplies (in a SQLite source, the Image table itself is checked).
    """
    options = ProfileOptions(
        compartment=compartment, image_table=image_table, alias_map=_alias_map(aliases_path)
    )
    result = api.validate_profiles(profiles, profile_dataset_id=profile_dataset_id, options=options)
    print_warnings(result.warnings)
    if as_json:
        emit_json(result.to_dict())
    else:
        aliases = ", ".join(f"{k} ← {v}" for k, v in result.resolved_aliases.items())
        stdout.print(
            facts_table(
                f"{profiles}: {'valid' if result.is_valid else 'INVALID'}",
                [
                    ("rows", f"{result.row_count:,}"),
                    ("join keys", ", ".join(result.join_keys) or "—"),
                    ("aliases", aliases or "—"),
                    ("missing", ", ".join(result.missing_columns) or "—"),
                ],
            )
        )
    if not result.is_valid:
        fail(f"{profiles}: {'; '.join(result.errors)}", 2, False)


OUTPUT_SUFFIXES = (".parquet", ".csv", ".tsv")


def _check_output(value: str) -> None:
    """Check ``--output`` before any work: a .parquet, .csv or .tsv file in a folder that exists."""
    if not value.lower().endswith(OUTPUT_SUFFIXES):
        raise WarehouseError(value, "--output must be a .parquet, .csv or .tsv file name")
    if not os.path.isdir(os.path.dirname(os.path.abspath(value))):
        raise StoreNotFoundError(value, "the --output folder does not exist")


def _write_table(table: pa.Table, output: str) -> None:
    """Write Parquet, or CSV/TSV (nested columns such as shape lists left out)."""
    lowered = output.lower()
    if lowered.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(table, output, compression="zstd")
        return
    import pyarrow as pa
    import pyarrow.csv as pacsv

    delimiter = "\t" if lowered.endswith(".tsv") else ","
    plain = table.select(
        [n for n in table.column_names if not pa.types.is_nested(table.schema.field(n).type)]
    )
    pacsv.write_csv(plain, output, write_options=pacsv.WriteOptions(delimiter=delimiter))


@click.command("join-profiles")
@click.argument("uri", required=False)
@click.argument("profiles", required=False)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the joined table (.parquet/.csv/.tsv).",
)
@profile_dataset_option
@click.option("--include-chunks", is_flag=True, help="One row per chunk of each matched image.")
@aliases_option
@profile_source_options
@file_set_options
@storage_option
@command_options
def join_profiles(
    uri: str,
    profiles: str,
    output: str | None,
    profile_dataset_id: str | None,
    include_chunks: bool,
    aliases_path: str | None,
    as_json: bool,
    profile_options: ProfileOptions,
    storage_options: dict[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> None:
    """Join a profile table to the images of a store (DuckDB)."""
    if output:
        _check_output(output)
    with working(f"Joining {profiles} to {uri}"):
        joined = api.join_profiles_with_store(
            uri,
            profiles,
            profile_dataset_id=profile_dataset_id,
            include_chunks=include_chunks,
            storage_options=storage_options,
            file_set=file_set,
            options=_with_aliases(profile_options, aliases_path),
        )
        if output:
            _write_table(joined, output)
    report = {**api.join_report(joined), "rows": joined.num_rows, "output": output}
    warnings = list(report.get("warnings", []))
    if report.get("unmatched_rows"):
        warnings.append(f"{report['unmatched_rows']:,} profile rows match no image")
    print_warnings(warnings)
    if as_json:
        emit_json(report)
        return
    stdout.print(
        facts_table(
            f"joined {profiles} to {uri}",
            [
                ("join keys", ", ".join(report.get("join_keys", []))),
                ("grain", f"{report.get('grain')} ({report.get('compartment') or 'one table'})"),
                ("profile rows", f"{report.get('profile_rows', 0):,}"),
                ("matched", f"{report.get('matched_rows', 0):,}"),
                ("unmatched", f"{report.get('unmatched_rows', 0):,}"),
                ("output", output or "— (use --output to save)"),
            ],
        )
    )


def _print_export(result: Any, as_json: bool) -> None:
    print_warnings(result.warnings)
    if as_json:
        emit_json(result.to_dict())
        return
    table = Table(
        title=f"warehouse {result.warehouse_root} ({result.layout}, {result.mode})",
        title_justify="left",
        box=None,
        header_style="bold",
    )
    for name in ("table", "role", "rows written", "datasets"):
        table.add_column(name)
    for write in result.tables:
        table.add_row(
            write.table_name, write.role, f"{write.rows_written:,}", ", ".join(write.datasets)
        )
    stdout.print(table)
    for join in result.joins:
        where = f"{join['compartment']}: " if join.get("compartment") else ""
        stdout.print(
            f"{where}joined on {', '.join(join['join_keys'])} at {join.get('grain')} grain: "
            f"{join['matched_rows']:,} matched, {join['unmatched_rows']:,} unmatched"
        )


warehouse_root_option = click.option(
    "--warehouse-root", required=True, type=click.Path(file_okay=False), help="Warehouse folder."
)
mode_option = click.option(
    "--mode",
    type=click.Choice(["overwrite", "append"]),
    default="overwrite",
    show_default=True,
    help="overwrite replaces a dataset's rows; append refuses datasets already present.",
)
layout_option = click.option(
    "--layout",
    type=click.Choice(["namespaced", "flat"]),
    default="namespaced",
    show_default=True,
    help="namespaced: images/…, profiles/… (Warehouse Spec 1.0); flat: the seed layout.",
)


@click.command("export-cytomining")
@click.argument("uri", required=False)
@warehouse_root_option
@click.option(
    "--profiles",
    help="Profiles to join: a table, CellProfiler output folder(s) or SQLite "
    "(profiles.joined_profiles, or one table per compartment).",
)
@profile_dataset_option
@mode_option
@layout_option
@click.option("--no-chunks", is_flag=True, help="Do not write images.chunk_index.")
@click.option("--dataset-id", help="Dataset id (default: the store name minus its suffix).")
@aliases_option
@profile_source_options
@file_set_options
@storage_option
@command_options
def export_cytomining(
    uri: str,
    warehouse_root: str,
    profiles: str | None,
    profile_dataset_id: str | None,
    mode: str,
    layout: str,
    no_chunks: bool,
    dataset_id: str | None,
    aliases_path: str | None,
    as_json: bool,
    profile_options: ProfileOptions,
    storage_options: dict[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> None:
    """Scan a store and write a Cytomining Parquet warehouse (no catalog needed)."""
    with working(f"Exporting {uri}"):
        result = api.export_store_to_cytomining_warehouse(
            uri,
            warehouse_root,
            profiles=profiles,
            profile_dataset_id=profile_dataset_id,
            include_chunks=not no_chunks,
            mode=mode,  # type: ignore[arg-type]
            layout=layout,  # type: ignore[arg-type]
            store=StoreOptions(
                dataset_id=dataset_id, storage_options=storage_options, file_set=file_set
            ),
            options=_with_aliases(profile_options, aliases_path),
        )
    _print_export(result, as_json)


@click.command("export-cytomining-catalog")
@catalog_option
@namespace_option
@warehouse_root_option
@click.option(
    "--dataset-id", "dataset_ids", multiple=True, help="Only these datasets (repeatable)."
)
@click.option(
    "--profiles",
    help="Profiles to join: a table, CellProfiler output folder(s) or SQLite "
    "(profiles.joined_profiles, or one table per compartment).",
)
@profile_dataset_option
@mode_option
@layout_option
@click.option("--no-chunks", is_flag=True, help="Do not write images.chunk_index.")
@aliases_option
@profile_source_options
@command_options
def export_cytomining_catalog(
    catalog: str,
    namespace: str,
    warehouse_root: str,
    dataset_ids: tuple[str, ...],
    profiles: str | None,
    profile_dataset_id: str | None,
    mode: str,
    layout: str,
    no_chunks: bool,
    aliases_path: str | None,
    as_json: bool,
    profile_options: ProfileOptions,
) -> None:
    """Write catalog tables (and joined profiles) to a Cytomining Parquet warehouse."""
    resolved = _catalog(catalog)
    with working(f"Exporting {namespace}"):
        result = api.export_catalog_to_cytomining_warehouse(
            resolved,
            namespace,
            warehouse_root,
            dataset_ids=list(dataset_ids) or None,
            profiles=profiles,
            profile_dataset_id=profile_dataset_id,
            include_chunks=not no_chunks,
            mode=mode,  # type: ignore[arg-type]
            layout=layout,  # type: ignore[arg-type]
            options=_with_aliases(profile_options, aliases_path),
        )
    _print_export(result, as_json)


@click.command("export-cytomining-profiles")
@click.argument("profiles")
@warehouse_root_option
@click.option(
    "--table-name",
    required=True,
    help="e.g. normalized_profiles (→ profiles.…; QC tables → quality_control.…).",
)
@click.option(
    "--role",
    type=click.Choice([role for role, spec in TABLE_SPECS.items() if spec.namespace != "images"]),
    default="joined_profiles",
    show_default=True,
    help="Manifest role; quality_control tables need a boolean qc_pass.",
)
@profile_dataset_option
@click.option(
    "--mode",
    type=click.Choice(["overwrite", "append"]),
    default="append",
    show_default=True,
    help="append refuses datasets already in the table; overwrite replaces them.",
)
@aliases_option
@click.option("--compartment", help="Compartment of the rows (cells, nuclei…), for object ids.")
@command_options
def export_cytomining_profiles(
    profiles: str,
    warehouse_root: str,
    table_name: str,
    role: str,
    profile_dataset_id: str | None,
    mode: str,
    aliases_path: str | None,
    compartment: str | None,
    as_json: bool,
) -> None:
    """Add a profile table (pycytominer, coSMicQC output...) to a warehouse."""
    result = api.export_profiles_to_cytomining_warehouse(
        profiles,
        warehouse_root,
        table_name=table_name,
        role=role,
        profile_dataset_id=profile_dataset_id,
        alias_map=_alias_map(aliases_path),
        mode=mode,  # type: ignore[arg-type]
        compartment=compartment,
    )
    _print_export(result, as_json)


def _requirements_line(failed: tuple[str, ...]) -> str:
    if not failed:
        count = len(api.warehouse_requirements())
        return f"all {count} requirements of the warehouse specification hold"
    return f"fails: {', '.join(failed)}"


@click.command("validate-warehouse")
@click.argument("warehouse_root", type=click.Path())
@command_options
def validate_warehouse(warehouse_root: str, as_json: bool) -> None:
    """Check a warehouse against the Cytomining Warehouse Specification."""
    result = api.validate_warehouse(warehouse_root)
    print_warnings(result.warnings)
    if as_json:
        emit_json(result.to_dict())
    else:
        table = Table(
            title=f"{warehouse_root}: {'valid' if result.is_valid else 'INVALID'} "
            f"({_requirements_line(result.failed_requirements)})",
            title_justify="left",
            box=None,
            header_style="bold",
        )
        foreign = any("lacks" in entry for entry in result.tables)
        for name in ("table", "role", "rows", "ok", *(("lacks",) if foreign else ())):
            table.add_column(name)
        for entry in result.tables:
            lacks = ["; ".join(_without_root(p, entry) for p in entry.get("lacks", []))]
            table.add_row(
                str(entry.get("table_name")),
                str(entry.get("role")),
                f"{entry.get('rows', 0):,}",
                "yes" if entry.get("ok") else "NO",
                *(lacks if foreign else ()),
            )
        stdout.print(table)
    if not result.is_valid:
        problems = "; ".join(_without_root(e, result.root) for e in result.errors)
        fail(f"{warehouse_root}: {problems}", 2, False)


def _without_root(message: str, prefix: object) -> str:
    """``message`` without a leading ``<root>: `` or ``table <name>: `` the line already says."""
    if isinstance(prefix, dict):
        prefix = f"table {prefix.get('table_name')}"
    tag, _, rest = message.partition("] ") if message.startswith("[") else ("", "", message)
    rest = rest.removeprefix(f"{prefix}: ")
    return f"{tag}] {rest}" if tag else rest
