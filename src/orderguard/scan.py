"""The nightly scan as plain functions, one per stage. pipelines/nightly_scan.py wires them
into a Prefect flow; tests and notebooks call them directly.

raw -> staging -> intermediate -> (rings, scores) -> marts -> published files
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from orderguard import (
    allowlist,
    backtest,
    config,
    contract,
    detect,
    features,
    feedback,
    graphs,
    health,
    history,
    ingest,
    publish,
    report,
    ring_ids,
    scoring,
    validate,
    warehouse,
)
from orderguard.rules import RuleSet, load_rules

log = logging.getLogger(__name__)


@dataclass
class ScanOptions:
    input_dir: Path
    out_dir: Path
    db_path: Path = field(default_factory=config.default_db_path)
    rules_path: Path | None = None
    programme_path: Path | None = None  # None: the package's programme.toml
    models_dir: Path | None = None  # None: config.models_dir(db_path), set on creation
    encoding: str | None = None
    review_budget: int | None = None
    seed: int = 7
    run_date: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    flow_run_id: str | None = None  # set when run by the Prefect flow
    lookback_days: int = 30  # features and graphs see this many nights of history
    keep_days: int = 90  # nights of history kept at all (orders, scoring inputs); >= lookback
    allow_small_export: bool = False  # scan a night far smaller than usual anyway
    # salt for pseudonymising phones in published files (else masked 138****5678)
    pseudonym_salt: str | None = field(default_factory=lambda: os.environ.get("ORDERGUARD_PSEUDONYM_SALT"))

    def __post_init__(self):
        if self.models_dir is None:
            self.models_dir = config.models_dir(self.db_path)
        if self.run_date is not None:
            # nights are compared as text in the history: 2026/10/30 would sort after every
            # 2026-10-xx night and let stale rows win for good (written back, a date reads
            # the same only in the YYYY-MM-DD form)
            try:
                written = date.fromisoformat(str(self.run_date)).isoformat()
            except ValueError:
                written = None
            if written != str(self.run_date):
                raise config.ScanOptionsError(
                    f"run date {self.run_date!r} is not a date written YYYY-MM-DD")
        if self.lookback_days < 1:
            raise config.ScanOptionsError(f"lookback_days must be at least 1, not {self.lookback_days}")
        if self.keep_days < self.lookback_days:
            raise config.ScanOptionsError(f"keep_days ({self.keep_days}) must be at least "
                                   f"lookback_days ({self.lookback_days}): the window reads "
                                   "the kept history")


class ScanBusyError(RuntimeError):
    pass


@contextmanager
def scan_lock(db_path: Path):
    """One scan per warehouse file: a second one is refused, never interleaved."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = db_path.with_name(db_path.name + ".lock")
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise ScanBusyError(
            f"another orderguard scan (or a feedback, allow, train or backtest command) is "
            f"using {db_path} (lock {lock_path}); wait for it to finish or use another --db"
        ) from exc
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def input_fingerprint(input_dir: Path) -> str:
    """sha256 over the relative paths and bytes of the input files, in path order. A
    partitioned night's files sit in one sub-folder per partition: they count too (the
    folder's own files alone hashed nothing, so a cut-off partitioned export could replace
    a published night). For a plain export folder the paths are the names, as before."""
    root = Path(input_dir)
    digest = hashlib.sha256()
    files = sorted((p for p in root.rglob("*") if p.is_file()),
                   key=lambda p: p.relative_to(root).parts)
    for path in files:
        digest.update(path.relative_to(root).as_posix().lower().encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- stages


def stage_ingest(opts: ScanOptions) -> dict:
    # raw.* is replaced every night and read once, by staging: not worth compressing
    # (10M orders: 31-41 -> 23-25 s to load, for a file 3 GB larger until the next night)
    with warehouse.connect(opts.db_path) as con, warehouse.text_uncompressed(con):
        tables = ingest.load_raw(con, Path(opts.input_dir), opts.encoding)
    return {name: asdict(t) for name, t in tables.items()}


def stage_validate(opts: ScanOptions) -> dict:
    """Validate tonight's export, add it to the history and open the lookback window."""
    with warehouse.connect(opts.db_path) as con:
        result = validate.stage(con, opts.run_id, known_accounts_table="ops.known_accounts")
        problems = shop_problems(con, opts.run_id)
        if lost := columns_lost(con):
            problems["columns_lost"] = lost
        if unreadable := unreadable_records(con):
            problems["unreadable_records"] = unreadable
        night = open_night(con, opts, result.counts)
    return {**night, "problems": problems}


def unreadable_records(con, prefix: str = "") -> dict[str, int]:
    """Tonight's records that could not be split into fields, per file: no shop can be named
    for them, so the report counts them apart from shop_problems."""
    return dict(con.execute("select $prefix || _file, count(*) from raw.unreadable_records "
                            "group by 1 order by 1", {"prefix": prefix}).fetchall())


def columns_lost(con) -> dict[str, list[str]]:
    """Contract columns the last scanned export's files had and tonight's lack, per table.
    An optional column the export no longer names (device_id headed "equipment" after a
    change to the shop system's export) is read as absent, and its signals go quiet with no
    error: the run says so instead (problems.columns_lost, the log, the report)."""
    if not warehouse.table_exists(con, "ops", "runs"):
        return {}
    last = warehouse.scalar(con, "select run_json from ops.runs "
                                 "order by finished_at desc, run_date desc limit 1")
    before = (publish.json.loads(last) if last else {}).get("raw") or {}
    lost = {}
    for name, table in contract.TABLES.items():
        had = set((before.get(name) or {}).get("columns") or [])
        if not had:
            continue
        has = {r[0] for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'raw' and table_name = $t", {"t": name}).fetchall()}
        if missing := [c for c in table.column_names if c in had and c not in has]:
            lost[name] = missing
            file = warehouse.scalar(con, f"select _file from raw.{name} limit 1")  # a contract name
            log.warning("%s: column(s) %s, in the last scanned export, are missing tonight (read "
                        "as empty): renamed in the export? (accepted header names: "
                        "orderguard.ingest.COLUMN_ALIASES)", file or name, ", ".join(missing))
    return lost


def problems_section(problems: dict) -> str:
    """HTML fragment naming the parts of tonight's export that failed validation."""
    unrecorded = problems.get("unrecorded_nights", [])
    note = (f"<p><b>Published but never recorded</b>: {html.escape(', '.join(unrecorded))} "
            "(a scan killed while recording its night): their flagged orders count as sent; "
            "rescan each with --run-date to record it.</p>" if unrecorded else "")
    for name, missing in problems.get("columns_lost", {}).items():
        note += (f"<p><b>Columns missing tonight</b> ({html.escape(name)}), in the last scanned "
                 f"export: {html.escape(', '.join(missing))} (read as empty).</p>")
    for file, count in problems.get("unreadable_records", {}).items():
        note += (f"<p><b>Unreadable records</b> ({html.escape(file)}): {count} could not be split "
                 "into the header's fields (a comma in a value that is not quoted?); each is in "
                 "quarantine.csv by its record number (its text masked), and nothing of it was "
                 "scanned.</p>")
    failed = problems.get("failed_shops", [])
    if not problems.get("shops_with_rejected_orders"):
        return f"<section><h2>运行问题 / Run problems</h2>{note}</section>" if note else ""
    text = (f"<p><b>{len(failed)} shop(s) failed</b>: most of their orders were rejected "
            f"({html.escape(', '.join(failed[:20]))}); the rest of the export was scanned.</p>"
            if failed else "<p>Some orders were rejected; no shop failed as a whole.</p>")
    table = report._table(pl.DataFrame(problems["shops_with_rejected_orders"]))
    return f"<section><h2>导入问题 / Rejected rows by shop</h2>{note}{text}{table}</section>"


NO_SHOP = "(no shop id)"


def shop_problems(con, run_id: str, failed_share: float = 0.5, min_orders: int = 5) -> dict:
    """Which shops' rows were rejected: a shop of at least `min_orders` orders with most of
    them quarantined is a failed part of the export (the rest is still scanned), and the run
    says so. Rows without a shop id are listed but are no shop (one blank line is not a
    failed shop), nor is a shop of one or two orders with one bad row."""
    rows = warehouse.query(
        con,
        "select coalesce(nullif(trim(r.shop_id), ''), $no_shop) as shop_id, "
        "count(*) as orders, count(q.row_number) as quarantined "
        "from raw.orders r left join ops.quarantine q on q.run_id = $run_id "
        "and q.table_name = 'orders' and q.row_number = r._row "
        "group by 1 having count(q.row_number) > 0 order by 3 desc, 1",
        {"run_id": run_id, "no_shop": NO_SHOP},
    )
    failed = rows.filter((pl.col("quarantined") >= failed_share * pl.col("orders"))
                         & (pl.col("orders") >= min_orders) & (pl.col("shop_id") != NO_SHOP))
    if failed.height:
        log.warning("orders of %d shop(s) mostly rejected: %s%s", failed.height,
                    ", ".join(failed["shop_id"].head(10)), ", ..." if failed.height > 10 else "")
    return {
        "shops_with_rejected_orders": rows.head(50).to_dicts(),
        "failed_shops": failed["shop_id"].to_list(),
    }


def quarantine_rows(con, run_id: str) -> pl.DataFrame:
    """grain: one row per rejected input row of the run, as quarantine.csv shows it: the
    export's owner finds the row by file and number; personal data stays out."""
    return warehouse.query(
        con,
        "select table_name, file, row_number, column_name, value, reason from ops.quarantine "
        "where run_id = $run_id order by table_name, row_number",
        {"run_id": run_id},
    ).with_columns(
        pl.when(pl.col("column_name").str.to_lowercase().is_in(list(publish.PII_COLUMNS))
                | pl.col("reason").str.ends_with(ingest.UNREADABLE_REASON_END))
        .then(publish.mask_text(pl.col("value"))).otherwise(pl.col("value")).alias("value")
    )


def refused_night_details(con, opts: ScanOptions, counts: dict) -> str:
    """What a refused night's owner needs: why its orders were rejected, and every rejected
    row in <out>/refused/<run_id>/quarantine.csv (the night itself publishes nothing)."""
    orders = counts["orders"]
    try:  # a partitioned night's input_dir holds partition folders, not the file
        found = ingest.find_file(contract.TABLES["orders"], Path(opts.input_dir))
    except (OSError, ingest.InputError):
        found = None
    files = found.name if found else "the orders file"
    if orders["read"] == 0:
        return f"; {files} has no data rows"
    # counted per column (a reason quotes its row's value, so counting reasons counts values),
    # with the first row's reason as the example
    common = warehouse.query(
        con,
        "select column_name, arg_min(reason, row_number) as reason, count(*) as n "
        "from staging.quarantine where table_name = 'orders' "
        "group by column_name order by n desc, column_name limit 1",
    )
    rows = quarantine_rows(con, opts.run_id)
    folder = Path(opts.out_dir) / "refused" / opts.run_id
    folder.mkdir(parents=True, exist_ok=True)
    publish.write_csv(rows, folder / "quarantine.csv.tmp")
    (folder / "quarantine.csv.tmp").replace(folder / "quarantine.csv")
    text = f"; {orders['quarantined']:,} of the {orders['read']:,} rows of {files} were rejected"
    if common.height:
        top = common.row(0, named=True)
        text += f", most often for {top['column_name']} ({top['n']:,} rows, e.g. {top['reason']})"
    # an empty required table (accounts.csv with its header only) rejects every order that
    # refers to it: say so, not only the symptom
    for name, table in contract.TABLES.items():
        if name != "orders" and table.required and counts.get(name, {}).get("read") == 0:
            text += f"; the {name} file has no data rows"
    return text + f"; every rejected row with its reason: {folder / 'quarantine.csv'}"


def open_night(con, opts: ScanOptions, counts: dict) -> dict:
    """staging.* holds tonight's validated rows: name the night, refuse a quiet or stale
    export, remember its accounts, merge into the history and switch staging to the window."""
    last = warehouse.scalar(con, "select max(created_at)::date from staging.orders")
    run_date = opts.run_date or (str(last) if last else None)
    try:
        if opts.run_date is None and run_date is not None:
            history.check_night_not_published_from_another_export(
                con, run_date, lambda: input_fingerprint(Path(opts.input_dir)))
        if opts.allow_small_export:
            history.check_anything_to_scan(con, opts.run_date, counts["orders"]["accepted"])
        else:
            history.check_volume(con, run_date, counts["orders"]["accepted"])
            history.check_created_on_night(con, run_date, last)
            if opts.run_date is None and run_date is not None:
                history.check_night_not_named_by_strays(con, run_date)
            history.check_created_volume(con, run_date)
    except history.QuietNightError as exc:
        details = refused_night_details(con, opts, counts)
        # the refused night's rejects live in refused/<run_id>/quarantine.csv only: the
        # warehouse keeps those of published nights
        con.execute("delete from ops.quarantine where run_id = $r", {"r": opts.run_id})
        raise history.QuietNightError(str(exc) + details) from None
    # grain: one row per account_id seen on an accepted night (they let later nights' orders
    # by the same buyers pass validation). Kept unique by the anti join, not a primary key:
    # its index cost 4.9 s of a first night with 2M accounts (0.4 s without)
    con.execute("create table if not exists ops.known_accounts (account_id varchar)")
    con.execute(
        "insert into ops.known_accounts select distinct account_id from staging.accounts "
        "anti join ops.known_accounts using (account_id)"
    )
    history.merge_night(con, run_date)
    forgotten = history.prune_history(con, run_date, opts.keep_days, opts.run_id)
    window = history.use_window(con, run_date, opts.lookback_days)
    return {"counts": counts, "run_date": run_date, "window": {**window, "forgotten": forgotten}}


def stage_features(opts: ScanOptions, settings: graphs.GraphSettings) -> dict[str, int]:
    with warehouse.connect(opts.db_path) as con, warehouse.text_uncompressed(con):
        return features.build_intermediate(con, settings)


def stage_graphs(opts: ScanOptions, settings: graphs.GraphSettings, run_date: str) -> dict:
    with warehouse.connect(opts.db_path, memory_limit=config.DUCKDB_MEMORY_BESIDE_PYTHON) as con:
        return detect.run_graph_stage(con, settings, run_date)


def stage_score(opts: ScanOptions, ruleset: RuleSet, run_date: str) -> dict:
    with warehouse.connect(opts.db_path, memory_limit=config.DUCKDB_MEMORY_BESIDE_PYTHON) as con:
        keeper = backtest.NightKeeper(con, run_date)
        result = detect.run_scoring_stage(
            con, ruleset, Path(opts.models_dir), opts.seed, opts.review_budget, keeper.add
        )
    return asdict(result)


def mart_params(run_id: str, programme_path: Path | None, run: dict, ruleset: RuleSet) -> dict:
    """The marts' SQL parameters for a scored night (`run` holds its run_date and scoring)."""
    return {
        "run_id": run_id,
        "programme_path": programme_path,
        "night": run["run_date"],
        "flag_threshold": run["scoring"]["flag_threshold"],
        "ring_member_score": float(
            1 - pow(2.718281828459045, -3.5 / ruleset.scoring.get("scale", 2.5))
        ),
    }


def stage_publish(opts: ScanOptions, ruleset: RuleSet, run: dict) -> dict:
    """Build the marts, write every output into a temp folder, then swap it in."""
    run_date = opts.run_date or run["run_date"]
    params = mart_params(opts.run_id, opts.programme_path, run, ruleset)
    staged = None
    try:
        with (warehouse.connect(opts.db_path, memory_limit=config.DUCKDB_MEMORY_BESIDE_PYTHON) as con,
              ThreadPoolExecutor(max_workers=1, thread_name_prefix="xlsx") as beside):
            open_published_flags(con, Path(opts.out_dir))
            if adopted := adopt_unrecorded_nights(con, Path(opts.out_dir), run["run_date"]):
                run.setdefault("problems", {})["unrecorded_nights"] = adopted
            feedback.upgrade_verdicts(con)
            # the marts and the night's bookkeeping (ops.runs, ring and flag history, rule hits)
            # commit only once its folder is swapped in: a night that fails to publish is not
            # recorded as one, and the marts still hold the night the files show
            con.begin()
            try:
                with warehouse.text_uncompressed(con):  # the marts, rebuilt every night; ops.* below
                    for name in ("order_scores", "late_flags", "rings", "ring_totals", "flagged_accounts"):
                        warehouse.build_model(con, "marts", name, params)
                    staged = publish.staging_folder(Path(opts.out_dir), opts.run_id)
                    flagged = support_orders(con, ruleset, run["run_date"], opts.pseudonym_salt)
                    # the workbook (~2 s for 100k rows at 10M orders, mostly outside DuckDB) is
                    # written beside the health marts; awaited below
                    workbook = beside.submit(publish.write_xlsx, flagged, staged / "flagged_orders.xlsx")
                    run["health"] = health.build_health_marts(con, params)
                summary = write_outputs(con, staged, ruleset, opts, run["run_date"], flagged, workbook)
                run["summary"] = summary
                record_published_flags(con, run["run_date"], flagged, opts.keep_days)
                forget = folders_to_forget(con, opts, run_date)
                run.setdefault("window", {}).setdefault("forgotten", {}).update(
                    {kind: len(folders) for kind, folders in forget.items()})
                run["finished_at"] = datetime.now().isoformat(timespec="seconds")
                record_run(con, run)
                feedback.record_rule_hits(con, run["run_date"])
                report.write_report(con, staged / "report.html", run, ruleset,
                                    extra_sections=[problems_section(run.get("problems", {})),
                                                    health.report_section(con),
                                                    allowlist.report_section(con)])
                if run.get("run_id") in _TIMERS:
                    _TIMERS[run["run_id"]].so_far(run)
                publish.write_json(staged / "run.json", run)
                final = publish.swap_in(Path(opts.out_dir), staged, run_date)
            except BaseException:
                con.rollback()
                raise
            con.commit()
        try:  # the night is published: a folder that will not go waits for the next night
            for kind, folders in forget.items():
                publish.forget_folders(folders)
                if folders:
                    log.info("%d %s before the kept history (--keep-days %d) removed: %s",
                             len(folders), kind.replace("_", " "), opts.keep_days,
                             ", ".join(f.name for f in folders[:5]) + (", ..." if len(folders) > 5 else ""))
        except OSError as exc:
            log.warning("could not remove an old published folder: %s", exc)
    except BaseException:
        # the unpublished night's files go (after the workbook thread has stopped writing
        # them): a full disk is not left fuller until the next night
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        raise
    return {"published": str(final), **summary}


def write_outputs(con, staged: Path, ruleset: RuleSet, opts: ScanOptions, night: str,
                  flagged: pl.DataFrame, workbook: Future) -> dict:
    """marts -> the night's files (owned by issue 5: support CSV, verdict template, ring and
    account lists, quarantine) and tonight's rings into ops.ring_history. `flagged` is
    support_orders(); `workbook` the flagged_orders.xlsx being written beside (its rows left
    out), awaited here so a failed workbook fails the night before anything is published."""
    # DuckDB writes the file itself: ten million rows never pass through Python
    orders_scored = publish.copy_to_parquet(
        con,
        "select order_id, score, risk_level, reason_codes, ring_id, ring_kind, rule_points, "
        # suppressed_by: the allow-list entry the order matches (low whatever its score)
        "forest_points, supervised_points, suppressed_by from marts.order_scores order by order_id",
        staged / "order_scores.parquet",
    )
    publish.write_csv(flagged, staged / "flagged_orders.csv")
    # only what support has not judged yet: a re-sent order keeps its verdict; orders sent on
    # earlier nights and still unjudged (left 待定, or never answered) follow, marked
    carried = carried_forward(con, night, flagged["order_id"])
    publish.write_verdict_template(flagged.filter(pl.col("prior_verdict").is_null())["order_id"],
                                   staged / "verdicts_template.csv", carried)
    accounts = warehouse.query(
        con,
        "select account_id, score, ring_id, ring_kind, ring_role, flagged_orders, reasons "
        "from marts.flagged_accounts order by score desc, account_id",
    )
    accounts = accounts.with_columns(
        pl.when(pl.col("reasons").list.len() == 0)
        .then(pl.concat_list(pl.lit("RING_") + pl.col("ring_kind").str.to_uppercase()))
        .otherwise(pl.col("reasons"))
        .alias("reason_codes")
    ).with_columns(
        publish.reasons_text(pl.col("reason_codes"), ruleset, "zh").alias("reasons"),
        pl.col("reason_codes").list.join(";"),
        pl.col("score").round(4),
    ).select(  # the contract's columns first, in its order (templates read by position)
        "account_id", "score", "ring_id", "reasons", "ring_kind", "ring_role", "flagged_orders",
        "reason_codes")
    publish.write_csv(accounts, staged / "flagged_accounts.csv")
    rings = warehouse.query(
        con,
        "select ring_id, kind, size, members, order_count, gmv, commission_at_stake, evidence, "
        "commission_pending, evidence_zh from marts.rings order by kind, ring_id",
    )
    publish.write_csv(rings, staged / "rings.csv")
    quarantine = quarantine_rows(con, opts.run_id)
    publish.write_csv(quarantine, staged / "quarantine.csv")
    xlsx_left_out = workbook.result()  # before tonight's rings go into ops.ring_history
    ring_ids.record_night(con, night, opts.run_id)
    top_reasons = (
        flagged.select(pl.col("reason_codes").str.split(";")).explode("reason_codes")
        .group_by("reason_codes").len().sort(["len", "reason_codes"], descending=[True, False]).head(5)
    )
    money = warehouse.query(
        con,
        "select coalesce(sum(c.amount), 0)::double as commission from "
        f"{report.LISTED_ORDERS} s "
        "left join staging.commissions c using (order_id) "
        "where coalesce(c.status, '') <> 'reversed'",
    ).row(0, named=True)
    in_rings = warehouse.query(
        con, "select gmv::double as gmv, commission_at_stake::double as commission from marts.ring_totals"
    ).row(0, named=True)
    changed = ring_ids.changes(con, night)
    top = rings.sort(["gmv", "ring_id"], descending=[True, False]).head(10)
    return {
        "orders_scored": orders_scored,
        "orders_flagged": flagged.height,
        "orders_flagged_late": int(flagged["flagged_late"].sum()),
        # support's new work: orders first sent tonight; and those it has judged already
        "orders_new_cases": int((flagged["first_listed"] == night).sum()),
        "orders_already_judged": int(flagged["prior_verdict"].is_not_null().sum()),
        # earlier nights' orders not listed tonight, still awaiting a verdict (the template's
        # carried_from rows)
        "orders_carried_forward": carried.height,
        "flagged_by_level": dict(flagged.group_by("risk_level").len().sort("risk_level").iter_rows()),
        "flagged_by_kind": dict(
            flagged.group_by(pl.col("ring_kind").fill_null("none")).len().sort("ring_kind").iter_rows()
        ),
        "actions": dict(flagged.group_by("recommended_action").len().sort("recommended_action").iter_rows()),
        "gmv_flagged": round(float(flagged["amount"].cast(pl.Float64).sum() or 0), 2),
        "commission_flagged": round(float(money["commission"] or 0), 2),
        # commission already paid out on flagged orders since cancelled or refunded (追回佣金)
        "commission_to_claw_back": round(float(
            flagged.filter(pl.col("recommended_action") == "追回佣金")["commission_settled"]
            .cast(pl.Float64).sum() or 0), 2),
        "accounts_flagged": accounts.height,
        "rings": rings.height,
        "rings_by_kind": dict(rings.group_by("kind").len().sort("kind").iter_rows()),
        # each order once: an order in two rings is in both rows of rings.csv
        "ring_gmv": round(in_rings["gmv"], 2),
        "ring_commission": round(in_rings["commission"], 2),
        "rings_new": changed["new"].height,
        "rings_returned": changed["returned"].height,
        "rings_gone": changed["gone"].height,
        "previous_night": changed["previous"],
        "top_rings": [
            {"ring_id": r["ring_id"], "kind": r["kind"], "size": r["size"], "orders": r["order_count"],
             "gmv": float(r["gmv"] or 0), "commission": float(r["commission_at_stake"] or 0)}
            for r in top.iter_rows(named=True)
        ],
        "quarantined_rows": quarantine.height,
        "xlsx_rows_left_out": xlsx_left_out,  # flagged orders only in the CSV (publish.XLSX_MAX_ROWS)
        "top_reasons": {r: n for r, n in top_reasons.iter_rows()},
    }


# an account verdict (pa, of feedback.account_clearances_sql) covering the flagged order s
COVERED = feedback.covered_by_account("pa", "s.created_at", "s.reason_codes")


def support_orders(con, ruleset: RuleSet, night: str, pseudonym_salt: str | None = None) -> pl.DataFrame:
    """grain: one row per flagged order, highest score first, for support staff: tonight's
    export's orders at the threshold and earlier nights' orders reaching it only tonight
    (flagged_late, marts.late_flags).

    commission_settled is the commission already paid out on the order (元).
    Personal data is cut to what support needs to act: phone masked (138****5678), address
    cut to city, district and compound, no payment account, no receiver name."""
    frame = warehouse.query(
        con,
        """
        with commission as (
            select order_id,
                   sum(amount) filter (where status = 'pending') as commission_pending,
                   sum(amount) filter (where status = 'settled') as commission_settled
            from staging.commissions group by 1
        ),
        flagged as (  -- tonight's export's flagged orders, then earlier ones flagged late
            select *, false as flagged_late from marts.order_scores where risk_level <> 'low'
            union all by name
            select *, true as flagged_late from marts.late_flags
        ),
        flagged_orders as (  -- only the flagged orders' rows: the join builds on them, not on
            -- the window's 10M orders (10M orders: ~2.4 -> 1.8 s)
            select order_id, receiver_phone, address
            from staging.orders semi join flagged using (order_id)
        ),
        other_rings as (  -- an order in two rings is listed under the stronger one
            select ro.order_id, string_agg(ro.ring_id, ';' order by ro.ring_id) as other_rings,
                   list(distinct ro.kind order by ro.kind) as other_ring_kinds
            from intermediate.ring_orders ro
            join flagged f on f.order_id = ro.order_id and ro.ring_id is distinct from f.ring_id
            group by ro.order_id
        ),
        listed_before as (  -- an order of tonight's export listed on an earlier night already
            select order_id, night as first_listed from ops.published_flags where night < $night
        ),
        """ + feedback.latest_verdicts_sql(con) + ",\n" + feedback.account_clearances_sql() + """
        select s.order_id, s.shop_id, s.buyer_id, s.referrer_id, s.amount, s.created_at, s.status,
               s.risk_level,
               s.score, s.reason_codes, s.ring_id, s.ring_kind,
               r.evidence_zh as ring_evidence,
               r.size as ring_size, r.order_count as ring_orders, r.gmv as ring_gmv,
               r.commission_at_stake as ring_commission,
               coalesce(c.commission_pending, 0) as commission_pending,
               coalesce(c.commission_settled, 0) as commission_settled,
               o.receiver_phone, a.city, a.district,
               -- the compound as the scan keys it: one flat's orders written '绿城桂花园' and
               -- '绿城桂花园小区' filter as one area
               coalesce(list_last(string_split(a.address_compound_key, '|')), a.compound) as compound,
               x.other_rings, x.other_ring_kinds, s.flagged_late,
               coalesce(lb.first_listed, $night) as first_listed,
               coalesce(pv.verdict, case when """ + COVERED + """ then pa.verdict end)
                   as prior_verdict,
               case when pv.verdict is null and pa.verdict = 'false_positive' and not """ + COVERED
        + """ then pa.night end as buyer_cleared_on
        from flagged s
        join flagged_orders o using (order_id)
        left join (select distinct on (address) * from intermediate.norm_address) a
               on a.address = o.address
        left join marts.rings r using (ring_id)
        left join commission c using (order_id)
        left join other_rings x using (order_id)
        left join listed_before lb using (order_id)
        left join order_verdicts pv using (order_id)
        -- a verdict on the buyer says nothing of a shop faking its waybills
        left join account_clearances pa
               on pa.account_id = s.buyer_id and s.ring_kind is distinct from 'fake_shipping'
        order by s.score desc, s.order_id
        """,
        {"night": night, "clearance_days": feedback.ACCOUNT_CLEARANCE_DAYS},
    )
    # only the facts evidence quotes, from the night's stored scoring inputs (reading every
    # stored column of the night's flagged orders was half of this function at 10M orders);
    # every rule feature is a scoring input, so each is a column there
    wanted = [c for c in publish.fact_features(ruleset) if c not in frame.columns]
    if wanted:
        facts = warehouse.query(
            con,
            "select order_id, columns(lambda c: list_contains($wanted, c)) "
            "from ops.feature_history where run_date = $night and order_id in "
            "(select order_id from marts.order_scores where risk_level <> 'low')",
            {"night": night, "wanted": wanted},
        )
        if frame["flagged_late"].any():  # their inputs were kept on their own (latest) night
            facts = pl.concat([facts, warehouse.query(
                con,
                "select order_id, columns(lambda c: list_contains($wanted, c)) "
                "from ops.feature_history where run_date <= $night and order_id in "
                "(select order_id from marts.late_flags) "
                "qualify row_number() over (partition by order_id order by run_date desc) = 1",
                {"night": night, "wanted": wanted},
            )], how="vertical_relaxed")
        frame = frame.join(facts, on="order_id", how="left")
    flag = float(ruleset.scoring.get("flag_threshold", 0.6))
    high = float(ruleset.scoring.get("high_threshold", 0.8))
    return frame.select(
        "order_id", "shop_id", "buyer_id", "amount",
        pl.col("created_at").dt.strftime("%Y-%m-%d %H:%M:%S"),
        "status", "risk_level", pl.col("score").round(4),
        publish.reasons_text(pl.col("reason_codes"), ruleset, "zh").alias("reasons"),
        pl.col("reason_codes").list.join(";"),
        "ring_id", "ring_kind",
        publish.recommended_action(flag, high).alias("recommended_action"),
        publish.evidence_text(ruleset, frame.schema).alias("evidence"),
        (publish.pseudonym(pl.col("receiver_phone"), pseudonym_salt) if pseudonym_salt
         else publish.mask_phone(pl.col("receiver_phone"))).alias("receiver_phone"),
        pl.concat_str(
            [pl.concat_str([pl.col("city"), pl.col("district")], separator="", ignore_nulls=True),
             pl.col("compound")], separator=" ", ignore_nulls=True,
        ).str.strip_chars().replace("", None).alias("address_area"),
        # last, so columns support's sheets already read keep their places; with a cancelled
        # or refunded status it is what 追回佣金 claws back
        "commission_settled",
        # the weaker rings the order is also in, so filtering by any ring of rings.csv finds it
        "other_rings",
        # an earlier night's order that reaches the threshold only tonight (its evidence grew)
        "flagged_late",
        # the night support was first sent the order: an order of tonight's export listed
        # before (it changed status since) is one support may already be handling
        "first_listed",
        # support's latest verdict on the order (else on its buyer) sent back before tonight:
        # a re-sent order already judged is not a new case; one judged a false positive is
        # only watched (观察)
        "prior_verdict",
        # what 冻结佣金 freezes (元, pending on the order) and whose link the order came through
        "commission_pending", "referrer_id",
        # the night support cleared the order's buyer, when that clearance does not cover the
        # order (created over ACCOUNT_CLEARANCE_DAYS later, or flagged for a new reason): a
        # new case with a real action, not a free pass
        "buyer_cleared_on",
    )


def carried_forward(con, night: str, listed: pl.Series) -> pl.DataFrame:
    """grain: one row per order support was sent on an earlier night and has not judged
    (its verdict row left blank or 待定, or the file never sent back), not in tonight's list
    `listed`, and still open: in tonight's lookback window and not allow-listed since.
    Columns order_id, first_listed (its row is in nights/<first_listed>/flagged_orders.csv).
    Without this an undecided order not flagged again dropped out of support's queue."""
    con.register("listed_tonight", pl.DataFrame({"order_id": listed.cast(pl.String)}).to_arrow())
    try:
        return warehouse.query(
            con,
            "with " + feedback.latest_verdicts_sql(con) + ",\n" + feedback.account_clearances_sql()
            + """
            select p.order_id, p.night as first_listed
            from ops.published_flags p
            join intermediate.order_scores s using (order_id)
            left join order_verdicts pv using (order_id)
            left join account_clearances pa
                   on pa.account_id = s.buyer_id and s.ring_kind is distinct from 'fake_shipping'
            where p.night < $night and pv.verdict is null and s.suppressed_by is null
              and not """ + feedback.covered_by_account(
                "pa", "s.created_at", "coalesce(p.reason_codes, s.reason_codes)") + """
              and p.order_id not in (select order_id from listed_tonight)
            order by p.night, p.order_id
            """,
            {"night": night, "clearance_days": feedback.ACCOUNT_CLEARANCE_DAYS},
        )
    finally:
        con.unregister("listed_tonight")


def record_run(con, run: dict) -> None:
    """ops.runs keeps one row per night; a rerun of a night replaces its row."""
    con.execute(
        """create table if not exists ops.runs (
            run_date varchar, run_id varchar, input_fingerprint varchar, started_at varchar,
            finished_at varchar, orders_scored bigint, orders_flagged bigint,
            accounts_flagged bigint, rings bigint, quarantined_rows bigint, run_json varchar)"""
    )
    s = run["summary"]
    con.execute("delete from ops.runs where run_date = $d", {"d": run["run_date"]})
    con.execute(
        "insert into ops.runs values ($d, $id, $fp, $st, $fi, $os, $of, $af, $r, $q, $j)",
        {
            "d": run["run_date"], "id": run["run_id"], "fp": run["input_fingerprint"],
            "st": run["started_at"], "fi": run["finished_at"], "os": s["orders_scored"],
            "of": s["orders_flagged"], "af": s["accounts_flagged"], "r": s["rings"],
            "q": s["quarantined_rows"], "j": publish.json.dumps(run, default=str),
        },
    )
    # ops.quarantine keeps the rejected rows of published nights only: those of a run this
    # one replaces, or of a run that failed or was refused (its owner got them in
    # refused/<run id>/quarantine.csv), would pile up under run ids no night names
    con.execute("delete from ops.quarantine where run_id not in (select run_id from ops.runs)")


def open_published_flags(con, out_dir: Path) -> None:
    """ops.published_flags, grain: one row per order_id support's CSV has listed as flagged,
    with the night it was first listed; marts.late_flags lists the window's other orders
    that reach the threshold tonight. A warehouse scanned by a version before this table
    reads what was sent from the night folders' flagged_orders.csv in `out_dir`; without
    them it counts the orders flagged in its window now as published on their own night
    (else its first night would list a month of old flags as new)."""
    if warehouse.table_exists(con, "ops", "published_flags"):
        # reason_codes came later: rows listed before it keep null (the window's codes stand in)
        con.execute("alter table ops.published_flags add column if not exists reason_codes varchar[]")
        return
    con.execute("create table ops.published_flags (order_id varchar, night varchar, reason_codes varchar[])")
    if not warehouse.table_exists(con, "ops", "runs"):
        return
    sent = published_before(out_dir)
    if sent.height:
        add_published(con, sent)
        log.info("ops.published_flags: %d orders read from %s's earlier flagged_orders.csv",
                 sent.height, out_dir)
        return
    con.execute(
        "insert into ops.published_flags select s.order_id, h._night, null "
        "from intermediate.order_scores s join staging.orders_history h using (order_id) "
        "where not s.is_tonight and s.risk_level <> 'low'")


def add_published(con, sent: pl.DataFrame) -> None:
    """Rows (order_id, night, reason_codes) into ops.published_flags, for orders it does not
    hold yet: an order's first listing is the one kept."""
    con.register("sent_to_support", sent.select("order_id", "night", "reason_codes").to_arrow())
    try:
        con.execute("insert into ops.published_flags select * from sent_to_support "
                    "anti join ops.published_flags using (order_id)")
    finally:
        con.unregister("sent_to_support")


def listed_in(path: Path) -> pl.DataFrame | None:
    """grain: one row per order of one night's flagged_orders.csv (its folder names the
    night), with the reason codes it was listed with; None for a file without order ids."""
    listed = pl.read_csv(path, infer_schema=False)
    listed = listed.rename({c: c.lstrip("\ufeff") for c in listed.columns})
    if "order_id" not in listed.columns:
        return None
    codes = (pl.col("reason_codes").str.split(";") if "reason_codes" in listed.columns
             else pl.lit(None, pl.List(pl.String)))
    return listed.select(pl.col("order_id").str.strip_prefix("'"),
                         pl.lit(path.parent.name).alias("night"), codes.alias("reason_codes"))


def published_before(out_dir: Path) -> pl.DataFrame:
    """grain: one row per order_id in any nights/<date>/flagged_orders.csv under `out_dir`:
    the first night it was listed and the reason codes it was listed with then."""
    frames = [f for path in sorted((out_dir / "nights").glob(f"{publish.NIGHT_FOLDER}/flagged_orders.csv"))
              if (f := listed_in(path)) is not None]
    if not frames:
        return pl.DataFrame(schema={"order_id": pl.String, "night": pl.String,
                                    "reason_codes": pl.List(pl.String)})
    return pl.concat(frames).sort("night", maintain_order=True).unique("order_id", keep="first",
                                                                     maintain_order=True)


def adopt_unrecorded_nights(con, out_dir: Path, night: str) -> list[str]:
    """The nights before `night` whose folder in `out_dir` holds a run the warehouse never
    recorded: a scan killed after swapping its folder in but before its bookkeeping
    committed (or a warehouse restored from an older copy). Support has those files, so
    their flagged orders go into ops.published_flags as sent: else tonight lists them
    again, as late flags and new cases (a night killed so: 134 of night 9's 217 new cases
    had been sent on night 8). Nights from before the warehouse's first recorded one are
    another warehouse's. The rest of such a night's record (ops.runs, its rings) comes
    only from rescanning it, which the warning asks for."""
    if not warehouse.table_exists(con, "ops", "runs"):
        return []
    runs = con.execute("select run_id, run_date from ops.runs").fetchall()
    if not runs:
        return []
    recorded = {run_id for run_id, _ in runs}
    first = min(run_date for _, run_date in runs)
    adopted = []
    for path in sorted((out_dir / "nights").glob(f"{publish.NIGHT_FOLDER}/run.json")):
        folder = path.parent
        if not first < folder.name < night:
            continue
        try:
            run_id = publish.json.loads(path.read_text("utf-8")).get("run_id")
        except (OSError, ValueError, AttributeError):
            continue
        if run_id in recorded or not (folder / "flagged_orders.csv").is_file():
            continue
        sent = listed_in(folder / "flagged_orders.csv")
        if sent is not None:
            add_published(con, sent)
        log.warning("night %s was published (%s, run %s) but this warehouse has no record of "
                    "it (its scan was killed while recording it, or the warehouse was restored "
                    "from an older copy): its %d flagged orders count as sent to support; "
                    "rescan it with --run-date %s to record it", folder.name, folder, run_id,
                    0 if sent is None else sent.height, folder.name)
        adopted.append(folder.name)
    return adopted


def folders_to_forget(con, opts: ScanOptions, night: str) -> dict[str, list[Path]]:
    """publish.folders_to_forget for tonight's --keep-days, after ops.published_flags has
    forgotten its rows before them; counted in run.json (window.forgotten), removed once
    the night is published."""
    named = {row[0] for row in con.execute("select distinct night from ops.published_flags").fetchall()}
    kept_from = history.nights_back(night, opts.keep_days).date().isoformat()
    return publish.folders_to_forget(Path(opts.out_dir), kept_from, named, opts.keep_days,
                                     time.time())


def record_published_flags(con, night: str, flagged: pl.DataFrame, keep_days: int) -> None:
    """Tonight's CSV rows (order_id, reason_codes joined by ';') into ops.published_flags with
    the reasons support was shown, which per-rule precision judges. A rerun of the night
    adds the orders it lists and keeps those the first run listed: support was sent that
    file (a rescan of night 7 after night 8 sees later updates and may drop an order near
    the threshold; night 8 then sent it again as a new case, first listed on the 8th);
    rows first listed before the kept history (--keep-days) are dropped with their orders
    (unless tonight's export updates the order: the history keeps it, and so do we).
    Not at the lookback window's start: an update to an older order (a refund a month on) is
    scored again, and a rescanned earlier night's window reaches back before the newest's;
    either would list an order support was already sent as a new case."""
    add_published(con, flagged.select("order_id", pl.lit(night).alias("night"),
                                      pl.col("reason_codes").str.split(";")))
    con.execute("delete from ops.published_flags where night < $start::date::varchar "
                "and order_id not in (select order_id from ops.tonight_orders)",
                {"start": history.nights_back(night, keep_days)})


def library_versions() -> dict[str, str]:
    """The other libraries a night's results depend on, for run.json (Prefect only when
    installed: the plain pipeline never imports it)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("duckdb", "polars", "networkx", "prefect"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


# kept here too: run.json and tests name it as the scan's
source_revision = warehouse.source_revision


def new_run(opts: ScanOptions) -> dict:
    return {
        "run_id": opts.run_id,
        "flow_run_id": opts.flow_run_id,
        "input_dir": str(Path(opts.input_dir).absolute()),  # read back from other folders (evaluate)
        "input_fingerprint": input_fingerprint(Path(opts.input_dir)),
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "stage_seconds": {},
        "versions": {**scoring.versions(), "orderguard_revision": source_revision(),
                     **library_versions()},
    }


def graph_settings(programme: health.Programme | None = None) -> graphs.GraphSettings:
    """Deep-chain rings start past the levels programme.toml allows, where the health marts
    call a tree too deep, and a self-referral circle's refunds count as arbitrage within the
    hours its scorecard calls arbitrage."""
    programme = programme or health.load_programme()
    return graphs.GraphSettings(
        deep_chain_depth=programme.default.allowed_levels,
        arbitrage_hours=programme.scorecard["arbitrage_hours"])


def resolve_nightly_input(opts: ScanOptions) -> ScanOptions:
    """An input like exports/{date} is filled with the night being scanned: --run-date, or
    yesterday in Asia/Shanghai for a scheduled run."""
    text = str(opts.input_dir)
    if "{date}" not in text:
        return opts
    night = opts.run_date or (datetime.now(ZoneInfo(config.TIMEZONE)).date() - timedelta(days=1)).isoformat()
    return replace(opts, input_dir=Path(text.replace("{date}", night)), run_date=night)


def call_directly(name: str, fn, *args):
    return fn(*args)


def run_scan(opts: ScanOptions, call_stage=call_directly,
             on_locked: Callable[[], None] | None = None) -> dict:
    """The whole scan. `call_stage(name, fn, *args)` runs one stage: directly by default,
    as a Prefect task when the nightly flow passes its own (pipelines/nightly_scan.py).
    `on_locked()` runs once the scan holds the warehouse's lock, before the first stage."""
    config.check_environment()
    opts = resolve_nightly_input(opts)
    if not Path(opts.input_dir).is_dir():
        raise ingest.InputError(f"the export folder {opts.input_dir} does not exist")
    publish.check_writable(Path(opts.out_dir))  # before the hour of work, not after it
    ruleset = load_rules(opts.rules_path)
    settings = graph_settings(health.load_programme(opts.programme_path))
    run = new_run(opts)
    with scan_lock(Path(opts.db_path)), StageTimer(run).registered() as timer:
        # a warehouse a newer version wrote is refused before any stage touches it (a
        # rollback after a bad release): nothing is ingested, merged or published
        refuse_newer_warehouse(Path(opts.db_path))
        if on_locked is not None:
            on_locked()
        with timer("ingest"):
            run["raw"] = call_stage("ingest", stage_ingest, opts)
        with timer("stage"):
            staged = call_stage("stage", stage_validate, opts)
        run["counts"], run["run_date"], run["window"], run["problems"] = (
            staged["counts"], staged["run_date"], staged["window"], staged["problems"])
        with timer("features"):
            run["intermediate_rows"] = call_stage("features", stage_features, opts, settings)
        with timer("graphs"):
            run["graphs"] = call_stage("graphs", stage_graphs, opts, settings, run["run_date"])
        with timer("score"):
            run["scoring"] = call_stage("score", stage_score, opts, ruleset, run["run_date"])
        run["rules"] = ruleset.source
        with timer("publish"):
            run["publish"] = call_stage("publish", stage_publish, opts, ruleset, run)
    return run


def refuse_newer_warehouse(db_path: Path) -> None:
    """warehouse.WarehouseTooNewError when a newer orderguard's schema wrote `db_path`; a
    new file or one from before schema versions passes, stamped with this version's (its
    tables are upgraded as the stages reach them)."""
    with warehouse.connect(db_path):
        pass  # connect checks the recorded schema version, then records this one


_TIMERS: dict[str, StageTimer] = {}  # run_id -> its timer, for stage_publish


class StageTimer:
    """Per stage: wall seconds, CPU seconds (all threads) and peak resident memory, sampled
    twice a second, into run["stage_seconds"], ["stage_cpu_seconds"], ["stage_peak_rss_mib"].
    The publish stage writes run.json before it ends, so it records its own figures so far
    (`so_far`) just before that."""

    def __init__(self, run: dict):
        self.run = run
        for key in ("stage_seconds", "stage_cpu_seconds", "stage_peak_rss_mib"):
            run.setdefault(key, {})
        self._current: tuple[str, float, float] | None = None
        self._peak = 0

    def so_far(self, run: dict | None = None) -> None:
        """Record the current stage's figures so far in self.run (and in `run`, the copy a
        Prefect task was handed)."""
        if self._current is None:
            return
        name, wall, cpu = self._current
        figures = {"stage_seconds": round(time.perf_counter() - wall, 3),
                   "stage_cpu_seconds": round(time.process_time() - cpu, 3),
                   "stage_peak_rss_mib": round(max(self._peak, resident_mib()))}
        for target in (self.run, run or self.run):
            for key, value in figures.items():
                target.setdefault(key, {})[name] = value

    @contextmanager
    def registered(self):
        """Findable by run_id while the scan runs (stage_publish records its own figures)."""
        _TIMERS[self.run["run_id"]] = self
        try:
            yield self
        finally:
            _TIMERS.pop(self.run["run_id"], None)

    @contextmanager
    def __call__(self, name: str):
        self._current = (name, time.perf_counter(), time.process_time())
        self._peak = resident_mib()
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                self._peak = max(self._peak, resident_mib())

        sampler = threading.Thread(target=sample, name=f"rss-{name}", daemon=True)
        sampler.start()
        log.info("stage %s ...", name)
        try:
            yield
        finally:
            done.set()
            sampler.join()
        self.so_far()
        self._current = None
        log.info("stage %s done in %.1f s (%.1f s CPU, peak %d MiB)", name,
                 self.run["stage_seconds"][name], self.run["stage_cpu_seconds"][name],
                 self.run["stage_peak_rss_mib"][name])


def resident_mib() -> float:
    """This process's resident memory now (Linux /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
