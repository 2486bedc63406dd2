"""The warehouse's schema version: an older orderguard refuses a warehouse a newer one wrote
(a rollback after a bad release) before changing anything; a warehouse from before versions
were recorded upgrades as it always did; a change to a persistent table bumps the number."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from orderguard import cli, feedback, warehouse

# what later nights read back: ops.* and the staging histories (persistent_tables below).
# One entry per schema version, never edited once released: a change adds the next one.
SCHEMAS = Path(__file__).with_name("schema_versions.json")

# ops tables a scan rebuilds whole every night before reading them: no earlier night's
# shape survives in them
REBUILT_NIGHTLY = {"tonight_orders", "scan_window", "window_extra"}


def written_by_newer(path: Path, version: int, revision: str = "abc123def456") -> Path:
    con = duckdb.connect(str(path))
    con.execute("create schema ops")
    con.execute(warehouse.SCHEMA_VERSION_DDL)
    con.execute("insert into ops.schema_version values ($v, $r, '2027-01-01T02:00:00', "
                "'2027-01-02T02:00:00')", {"v": version, "r": revision})
    con.execute("create table ops.runs (run_date varchar, brand_new_column varchar)")
    con.close()
    return path


def schemas_and_rows(path: Path) -> list:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            "select table_schema, table_name, column_name, data_type, "
            "(select count(*) from ops.schema_version) from information_schema.columns "
            "order by all").fetchall()
    finally:
        con.close()


def test_a_warehouse_written_by_a_newer_schema_is_refused_naming_file_versions_and_what_to_do(tmp_path):
    path = written_by_newer(tmp_path / "wh.duckdb", warehouse.SCHEMA_VERSION + 1)
    before = schemas_and_rows(path)
    for read_only in (False, True):
        with pytest.raises(warehouse.WarehouseTooNewError) as refused:
            warehouse.connect(path, read_only=read_only)
        text = str(refused.value)
        assert str(path.absolute()) in text
        assert f"schema {warehouse.SCHEMA_VERSION + 1}" in text and "abc123def456" in text
        assert f"schema {warehouse.SCHEMA_VERSION}," in text
        assert "newer orderguard" in text and "restore" in text
    assert schemas_and_rows(path) == before  # no layer created, no stamp overwritten


def test_a_warehouse_from_before_schema_versions_upgrades_and_records_this_version(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema ops")
    con.execute("create table ops.published_flags (order_id varchar, night varchar)")
    con.close()
    with warehouse.connect(path) as con:
        assert warehouse.stored_schema(con) == (warehouse.SCHEMA_VERSION, warehouse.source_revision())
    with warehouse.connect(path, read_only=True) as con:  # read-only: checked, not stamped
        assert warehouse.stored_schema(con)[0] == warehouse.SCHEMA_VERSION


def test_a_warehouse_an_older_schema_wrote_is_upgraded_and_keeps_the_older_row(tmp_path, monkeypatch):
    path = written_by_newer(tmp_path / "wh.duckdb", warehouse.SCHEMA_VERSION, "older")
    monkeypatch.setattr(warehouse, "SCHEMA_VERSION", warehouse.SCHEMA_VERSION + 1)
    with warehouse.connect(path) as con:
        assert warehouse.stored_schema(con)[0] == warehouse.SCHEMA_VERSION
        rows = con.execute("select schema_version, orderguard_revision from ops.schema_version "
                           "order by 1").fetchall()
    assert rows[0] == (warehouse.SCHEMA_VERSION - 1, "older") and len(rows) == 2


def test_every_command_exits_6_on_a_newer_warehouse_with_one_line_and_publishes_nothing(tmp_path, capsys):
    path = written_by_newer(tmp_path / "wh.duckdb", warehouse.SCHEMA_VERSION + 1)
    before = schemas_and_rows(path)
    export = tmp_path / "export"
    export.mkdir()
    (export / "orders.csv").write_text("order_id\n1\n", "utf-8")
    out = tmp_path / "out"
    for argv in (["scan", "--input", str(export), "--out", str(out), "--db", str(path), "--no-prefect"],
                 ["allow", "--list", "--db", str(path)],
                 ["allow", "--account", "U1", "--reason", "staff", "--db", str(path)]):
        assert cli.main(argv) == 6, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and str(path.absolute()) in err, argv
        assert len(err.strip().splitlines()) == 1, argv
    assert not (out / "nights").exists() and not (out / "latest").exists()
    assert schemas_and_rows(path) == before


# ----------------------------------------------------------------------------- the number


def persistent_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """table -> its columns and types, for what later nights read back. ops.feature_history
    is named without columns: they are the scorer's inputs, and NightKeeper already carries
    a change across versions either way (a new feature is added, a missing one left null, a
    retyped one restarts the history), so a new feature needs no bump."""
    rows = con.execute(
        "select table_schema || '.' || table_name, column_name || ' ' || data_type "
        "from information_schema.columns where (table_schema = 'ops' or "
        "(table_schema = 'staging' and table_name like '%\\_history' escape '\\')) "
        "order by table_schema, table_name, ordinal_position").fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        if table.split(".")[1] in REBUILT_NIGHTLY:
            continue
        columns = tables.setdefault(table, [])
        if table != "ops.feature_history":
            columns.append(column)
    return tables


@pytest.fixture(scope="module")
def scanned_tables(scanned_world, tmp_path_factory) -> dict[str, list[str]]:
    """The persistent tables a scanned warehouse has, plus those only other commands create
    (ops.verdicts: support's first verdict file), on a copy of the session's warehouse."""
    copy = tmp_path_factory.mktemp("schema") / "wh.duckdb"
    shutil.copy(scanned_world["db"], copy)
    with warehouse.connect(copy) as con:
        feedback._ensure_table(con)
        return persistent_tables(con)


def test_a_change_to_a_persistent_table_comes_with_a_new_schema_version(scanned_tables):
    """Fails when a persistent table's columns change and warehouse.SCHEMA_VERSION does not:
    bump it and add the printed entry to tests/schema_versions.json under the new number
    (older versions then refuse the warehouse this one writes, instead of failing mid-night)."""
    known = {int(k): v for k, v in json.loads(SCHEMAS.read_text("utf-8")).items()}
    current = warehouse.SCHEMA_VERSION
    assert max(known) == current, (
        f"warehouse.SCHEMA_VERSION is {current} but {SCHEMAS.name} ends at {max(known)}")
    if scanned_tables != known[current]:
        added = {t: c for t, c in scanned_tables.items() if known[current].get(t) != c}
        gone = sorted(set(known[current]) - set(scanned_tables))
        pytest.fail(
            f"the warehouse's persistent tables changed under schema version {current} "
            f"(changed or new: {sorted(added)}, gone: {gone}): set warehouse.SCHEMA_VERSION = "
            f"{current + 1} and add this entry to {SCHEMAS.name} (leave {current}'s as it is):\n"
            + json.dumps({str(current + 1): scanned_tables}, indent=1, ensure_ascii=False))
    versions = sorted(known)
    for older, newer in zip(versions, versions[1:], strict=False):
        assert known[older] != known[newer], f"schema versions {older} and {newer} are the same tables"


def test_the_version_check_sees_a_column_added_to_an_ops_table(scanned_world, tmp_path):
    copy = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], copy)
    with warehouse.connect(copy) as con:
        before = persistent_tables(con)
        con.execute("alter table ops.runs add column reviewer varchar")
        con.execute("alter table ops.feature_history add column new_feature double")
        after = persistent_tables(con)
    assert after["ops.runs"] == [*before["ops.runs"], "reviewer VARCHAR"]
    assert after["ops.feature_history"] == before["ops.feature_history"]  # a new feature: no bump
