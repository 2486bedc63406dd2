"""Partitioned intake: validate export partitions apart, load them with one central writer.

A night's export can arrive as several folders (one per shop group, or one per day of a
larger store), each a complete export in the data contract. Each partition is read and
validated in its own in-memory DuckDB, anywhere (a thread, a process, a Dask worker):

    partition folder -> raw.* -> staging.* (ingest.load_raw + validate.stage)
      -> out_dir/staging_<table>.parquet, quarantine.parquet, batch_clock.parquet,
         partition.json (counts, files, seconds)

and one central task, the only writer of the warehouse file, loads every partition:

    partitions' Parquet -> staging.<table> (+ cross-partition repeats -> ops.quarantine)
      -> scan.open_night (known accounts, volume check, history, lookback window)

after which features, graphs, scoring and publishing run centrally exactly as in a plain
scan (``scan.run_scan``; ``PartitionedStages`` swaps in the two intake stages).

Rows that belong to one partition (orders, and commissions keyed by (order_id, level))
must not repeat across partitions: a later partition's repeat goes to quarantine naming
the partition file and row of the first, as validation does within one file. Reference
rows every partition may carry (accounts, products) merge when identical; a later
partition's row that differs from the first partition's is quarantined. So per table
``read == accepted + quarantined + merged``.

Each partition is validated against its own clock (its latest order time) and its own
accounts plus the accounts of earlier nights: a partition must carry the accounts its
orders name, as a single export does.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from orderguard import contract, ingest, scan, validate, warehouse

log = logging.getLogger(__name__)

MANIFEST = "partition.json"
# rows owned by one partition: a repeat in a later partition is quarantined
OWNED_KEYS = {"orders": ("order_id",), "commissions": ("order_id", "level")}
# reference rows each partition may carry: identical repeats merge, differing ones are quarantined
SHARED_KEYS = {"accounts": ("account_id",), "products": ("product_id",)}


def find_partitions(input_dir: Path) -> list[Path]:
    """The partition folders of a night: sub-folders holding an orders file, in name order.
    A folder that is itself an export (orders file at the top) is one partition."""
    input_dir = Path(input_dir)
    if _has_orders(input_dir):
        return [input_dir]
    found = sorted(p for p in input_dir.iterdir() if p.is_dir() and _has_orders(p))
    if not found:
        raise ingest.InputError(f"{input_dir}: no partition folders (sub-folders with orders.csv "
                                "or orders.parquet) and no export at the top")
    return found


def _has_orders(folder: Path) -> bool:
    return any(p.name.lower() in ("orders.csv", "orders.parquet") for p in folder.iterdir())


def export_known_accounts(db_path: Path, dest: Path) -> Path | None:
    """Copy the warehouse's ops.known_accounts (accounts of earlier nights) to Parquet for
    the partitions; None when the warehouse has none yet."""
    if not Path(db_path).exists():
        return None
    with warehouse.connect(db_path, read_only=True) as con:
        if not warehouse.table_exists(con, "ops", "known_accounts"):
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        con.sql("select account_id from ops.known_accounts order by 1").write_parquet(str(dest))
    return dest


def validate_partition(input_dir: str | Path, out_dir: str | Path, run_id: str,
                       known_accounts_parquet: str | Path | None = None,
                       encoding: str | None = None, name: str | None = None) -> dict[str, Any]:
    """Ingest and validate one partition folder in its own in-memory DuckDB and write its
    staging tables, quarantine rows and clock as Parquet into out_dir. `name` (default: the
    folder's name) prefixes the file names in _file and quarantine (``shops-a/orders.csv``).
    Returns the partition's manifest (also written to out_dir/partition.json)."""
    started = time.perf_counter()
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    name = name or input_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # a retried partition is complete or absent
    with warehouse.connect(":memory:") as con:
        known = None
        if known_accounts_parquet:
            con.execute("create table ops.known_accounts as select account_id::varchar as account_id "
                        "from read_parquet($path)", {"path": str(known_accounts_parquet)})
            known = "ops.known_accounts"
        raw = ingest.load_raw(con, input_dir, encoding, scratch_dir=out_dir)  # not /tmp: PII
        result = validate.stage(con, run_id, known_accounts_table=known)
        problems = scan.shop_problems(con, run_id)  # needs this partition's raw rows
        if unreadable := scan.unreadable_records(con, prefix=f"{name}/"):
            problems["unreadable_records"] = unreadable
        prefix = {"prefix": f"{name}/"}
        for table in contract.TABLES:
            con.sql(f"select * replace ($prefix || _file as _file) from staging.{table}",
                    params=prefix).write_parquet(str(out_dir / f"staging_{table}.parquet"))
        con.sql("select * replace ($prefix || file as file) from staging.quarantine",
                params=prefix).write_parquet(str(out_dir / "quarantine.parquet"))
        con.sql("select as_of from staging.batch_clock").write_parquet(str(out_dir / "batch_clock.parquet"))
    manifest = {
        "name": name, "input_dir": str(input_dir), "out_dir": str(out_dir), "run_id": run_id,
        "input_fingerprint": scan.input_fingerprint(input_dir),
        "raw": {t: {"file": f"{name}/{Path(r.file).name}", "rows": r.rows, "encoding": r.encoding}
                for t, r in raw.items()},
        "counts": result.counts,
        "problems": problems,
        "seconds": round(time.perf_counter() - started, 3),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), "utf-8")
    log.info("partition %s: %d orders accepted, %d quarantined in %.1f s", name,
             result.counts["orders"]["accepted"], result.counts["orders"]["quarantined"],
             manifest["seconds"])
    return manifest


def read_manifests(partition_dirs: Iterable[str | Path]) -> list[dict[str, Any]]:
    manifests = []
    for folder in partition_dirs:
        path = Path(folder) / MANIFEST
        if not path.exists():
            raise RuntimeError(f"partition output {folder} is incomplete (no {MANIFEST})")
        manifests.append(json.loads(path.read_text("utf-8")))
    return manifests


def load_partitions(con: duckdb.DuckDBPyConnection,
                    partition_dirs: Sequence[str | Path]) -> dict[str, dict[str, int]]:
    """The one central writer: the partitions' staging Parquet -> staging.<table>, their
    quarantine rows plus cross-partition repeats -> ops.quarantine (under the partitions'
    run id), staging.batch_clock = the latest partition clock, and raw.<table> as a stand-in
    (the accepted rows as text: the raw rows stay with the partitions). Partitions count in
    the order given: the first occurrence of a key wins. Returns per table the summed read,
    accepted, quarantined and merged counts."""
    dirs = [Path(d) for d in partition_dirs]
    manifests = read_manifests(dirs)
    run_ids = {m["run_id"] for m in manifests}
    if len(run_ids) != 1:
        raise ValueError(f"partitions come from different runs: {sorted(run_ids)}")
    run_id = run_ids.pop()
    con.execute(validate.QUARANTINE_DDL)
    con.execute("create or replace temp table partition_repeats (table_name varchar, file varchar, "
                "row_number bigint, column_name varchar, value varchar, reason varchar)")
    counts: dict[str, dict[str, int]] = {}
    for table in contract.TABLES:
        files = [str(d / f"staging_{table}.parquet") for d in dirs]
        merged = _load_table(con, table, files)
        read = sum(m["counts"][table]["read"] for m in manifests)
        accepted = int(warehouse.scalar(con, f"select count(*) from staging.{table}"))
        repeats = int(warehouse.scalar(
            con, "select count(*) from partition_repeats where table_name = $t", {"t": table}))
        quarantined = sum(m["counts"][table]["quarantined"] for m in manifests) + repeats
        counts[table] = {"read": read, "accepted": accepted, "quarantined": quarantined,
                         "merged": merged}
        if read != accepted + quarantined + merged:  # a bug, never an input problem
            raise AssertionError(f"{table}: read {read} != accepted {accepted} + quarantined "
                                 f"{quarantined} + merged {merged}")
        _stand_in_raw(con, table)
    con.execute("create or replace table staging.batch_clock as select max(as_of) as as_of "
                "from read_parquet($files)", {"files": [str(d / "batch_clock.parquet") for d in dirs]})
    con.execute("begin transaction")
    try:
        con.execute("delete from ops.quarantine where run_id = $r", {"r": run_id})
        con.execute("insert into ops.quarantine by name select * from read_parquet($files)",
                    {"files": [str(d / "quarantine.parquet") for d in dirs]})
        con.execute("insert into ops.quarantine by name select $r as run_id, * from partition_repeats",
                    {"r": run_id})
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    log.info("loaded %d partitions: %s", len(dirs),
             {t: c["accepted"] for t, c in counts.items()})
    return counts


def _load_table(con: duckdb.DuckDBPyConnection, table: str, files: list[str]) -> int:
    """staging.<table> from the partitions' files, first occurrence of a key kept; repeats
    into the temp table partition_repeats. Returns how many identical shared rows merged.
    Only keys seen more than once are ranked (a narrow pass), so the wide rows are read once."""
    owned = table in OWNED_KEYS
    keys = OWNED_KEYS.get(table) or SHARED_KEYS[table]
    by = ", ".join(keys)
    values = ", ".join(f"w.{c}" for c in contract.TABLES[table].column_names)
    parts = "(select *, list_position($files, filename) as _part from read_parquet($files, filename = true))"
    con.execute(
        f"""create or replace temp table partition_keys as
        with keyed as (select {by}, _part, _row, _file from {parts}),
        repeated as (select {by} from keyed group by all having count(*) > 1),
        rank_repeats as (
            select k.*, row_number() over w as _n, first_value(_file) over w as _first_file,
                   first_value(_row) over w as _first_row, first_value(_part) over w as _first_part
            from keyed k semi join repeated using ({by})
            window w as (partition by {by} order by _part, _row)
        )
        select * from rank_repeats where _n > 1""",
        {"files": files},
    )
    if not owned:  # a shared row that equals the first partition's row merges silently
        con.execute(
            f"""create or replace temp table partition_keys as
            select k.*, row({values}) is not distinct from row({values.replace('w.', 'f.')}) as _same
            from partition_keys k
            join {parts} w on w._part = k._part and w._row = k._row
            join {parts} f on f._part = k._first_part and f._row = k._first_row""",
            {"files": files},
        )
    warehouse.drop_if(con, "view", "staging", table)
    con.execute(
        f"create or replace table staging.{table} as select * exclude (filename, _part) from {parts} p "
        "anti join partition_keys k on p._part = k._part and p._row = k._row",
        {"files": files},
    )
    # e.g. order_id 'O1' with level 2 repeats shops-a/commissions.csv row 7 of an earlier ...
    key = (f"'{keys[0]} ''' || {keys[0]} || ''''"
           + "".join(f" || ' with {k} ' || {k}" for k in keys[1:]))
    first = "_first_file || ' row ' || _first_row || ' of an earlier partition"
    reason = (f"{key} || ' repeats ' || {first} (the first occurrence is kept)'" if owned else
              f"{key} || ' differs from its row in ' || {first} (the first partition''s row is kept)'")
    con.execute(
        f"insert into partition_repeats select $table, _file, _row, $column, {keys[0]}::varchar, "
        f"{reason} from partition_keys where {'true' if owned else 'not _same'} order by _part, _row",
        {"table": table, "column": keys[0]},
    )
    merged = 0 if owned else int(warehouse.scalar(
        con, "select count(*) from partition_keys where _same"))
    con.execute("drop table partition_keys")
    return merged


def _stand_in_raw(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """raw.<table> in the warehouse: the raw rows stay with the partitions; here one row per
    accepted row with its file, row number and key, so readers that ask whether a file was
    given (health.commissions_given) see tonight's input, never an earlier night's."""
    keys = ", ".join(OWNED_KEYS.get(table) or SHARED_KEYS[table])
    ingest.create_empty_raw(con, contract.TABLES[table])
    con.execute(f"insert into raw.{table} ({keys}, _row, _file) select {keys}, _row, _file "
                f"from staging.{table}")


def stage_load(opts: scan.ScanOptions, partition_dirs: Sequence[str | Path]) -> dict:
    """The central intake stage: load the partitions, then open the night as a plain scan
    does (scan.open_night). Returns what scan.stage_validate returns."""
    with warehouse.connect(opts.db_path) as con:
        counts = load_partitions(con, partition_dirs)
        night = scan.open_night(con, opts, counts)
    return {**night, "problems": combine_problems(read_manifests(partition_dirs))}


def combine_problems(manifests: list[dict[str, Any]], top: int = 50) -> dict:
    """The partitions' scan.shop_problems as one: rejected orders summed per shop (a shop may
    span day partitions), and every shop that failed in a partition. Repeats across
    partitions are not counted here: the order itself was scanned."""
    totals: dict[str, dict[str, int]] = {}
    for m in manifests:
        for row in m["problems"]["shops_with_rejected_orders"]:
            shop = totals.setdefault(row["shop_id"], {"orders": 0, "quarantined": 0})
            shop["orders"] += row["orders"]
            shop["quarantined"] += row["quarantined"]
    rows = sorted(({"shop_id": k, **v} for k, v in totals.items()),
                  key=lambda r: (-r["quarantined"], r["shop_id"]))
    failed = sorted({s for m in manifests for s in m["problems"]["failed_shops"]})
    combined = {"shops_with_rejected_orders": rows[:top], "failed_shops": failed}
    unreadable = {file: count for m in manifests
                  for file, count in m["problems"].get("unreadable_records", {}).items()}
    if unreadable:
        combined["unreadable_records"] = dict(sorted(unreadable.items()))
    return combined


MapPartitions = Callable[[Callable[..., dict], list[dict[str, Any]]], list[dict]]


def map_sequentially(fn: Callable[..., dict], calls: list[dict[str, Any]]) -> list[dict]:
    return [fn(**kwargs) for kwargs in calls]


class PartitionedStages:
    """A `call_stage` for scan.run_scan that replaces its two intake stages:

    ingest -> validate_partition for every partition folder of the night, through
              `map_partitions(fn, calls)` (sequential here; the Prefect flow maps them on
              its task runner: threads, or Dask workers);
    stage  -> stage_load: the central load + scan.open_night;

    and runs every other stage (features, graphs, score, publish) through `call_stage`,
    unchanged. Partition outputs go to work_dir/<run_id>/<partition> (a folder every worker
    and the central task can reach) and are removed once loaded."""

    def __init__(self, work_dir: Path, map_partitions: MapPartitions = map_sequentially,
                 call_stage: Callable[..., Any] = scan.call_directly, keep_outputs: bool = False):
        self.work_dir = Path(work_dir)
        self.map_partitions = map_partitions
        self.call_stage = call_stage
        self.keep_outputs = keep_outputs
        self.partition_dirs: list[Path] = []

    def __call__(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        if name == "ingest":
            return self.ingest(*args)
        if name == "stage":
            staged = self.call_stage("stage", stage_load, *args, self.partition_dirs)
            if not self.keep_outputs:
                shutil.rmtree(self.work_dir / args[0].run_id, ignore_errors=True)
            return staged
        return self.call_stage(name, fn, *args)

    def ingest(self, opts: scan.ScanOptions) -> dict:
        folders = find_partitions(Path(opts.input_dir))
        root = self.work_dir / opts.run_id
        known = export_known_accounts(Path(opts.db_path), root / "known_accounts.parquet")
        names = [f.name if f != Path(opts.input_dir) else "export" for f in folders]
        if len(set(names)) != len(names):
            raise ingest.InputError(f"{opts.input_dir}: partition folder names repeat")
        calls = [
            {"input_dir": str(f), "out_dir": str(root / n), "run_id": opts.run_id,
             "known_accounts_parquet": str(known) if known else None,
             "encoding": opts.encoding, "name": n}
            for f, n in zip(folders, names, strict=True)
        ]
        manifests = self.map_partitions(validate_partition, calls)
        self.partition_dirs = [Path(m["out_dir"]) for m in manifests]
        return {"partitions": {m["name"]: {"raw": m["raw"], "counts": m["counts"],
                                           "seconds": m["seconds"],
                                           "input_fingerprint": m["input_fingerprint"]}
                               for m in manifests}}


def split_by_shop(source: Path, dest: Path, groups: int = 2) -> list[Path]:
    """One export folder per shop group: its orders and their commissions, all accounts and
    products in each (reference rows every partition may carry)."""
    orders = pl.read_csv(source / "orders.csv", infer_schema=False)
    commissions = pl.read_csv(source / "commissions.csv", infer_schema=False)
    shops = sorted(orders["shop_id"].unique())
    folders = []
    for g in range(groups):
        folder = dest / f"shops-{g}"
        folder.mkdir(parents=True)
        mine = orders.filter(pl.col("shop_id").is_in(shops[g::groups]))
        mine.write_csv(folder / "orders.csv")
        commissions.filter(pl.col("order_id").is_in(mine["order_id"].implode())).write_csv(
            folder / "commissions.csv")
        for name in ("accounts.csv", "products.csv"):
            (folder / name).write_bytes((source / name).read_bytes())
        folders.append(folder)
    return folders
