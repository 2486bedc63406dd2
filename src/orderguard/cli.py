"""The `orderguard` command."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import signal
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

from orderguard import config

log = logging.getLogger("orderguard")


# the stages log through orderguard.* loggers: send them to the flow run's logs too (the
# Prefect UI, `prefect flow-run logs`); outside a run they only go to stderr
PREFECT_RUN_LOGS = {"PREFECT_LOGGING_EXTRA_LOGGERS": "orderguard",
                    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore"}


def prefect_environment() -> None:
    """Prefect keeps its SQLite home under data/ and gets a start-up timeout that survives a
    cold start on 2 cores (the default 20 s does not). Set before Prefect is imported."""
    home = config.prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    for name, value in PREFECT_RUN_LOGS.items():
        os.environ.setdefault(name, value)


def _environ(pid: str) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _exe(pid: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:  # gone, or not ours to read (init)
        return None


def stop_orphaned_prefect_servers(home: Path) -> list[int]:
    """Stop the ephemeral Prefect servers of this PREFECT_HOME whose scan is gone. A scan
    killed outright (SIGKILL, the OOM killer) cannot stop the server it started, which then
    lives on (~220 MB) under init; every such kill left one more. A server is the scan's
    child running the scan's own interpreter, so one whose parent runs another program (or
    none) is an orphan. Reads Linux's /proc; elsewhere nothing is found."""
    stopped = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = entry.name
        try:
            env = _environ(pid)
            if env.get("PREFECT__SERVER_EPHEMERAL") != "1" or env.get("PREFECT_HOME") != str(home):
                continue
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except OSError:  # gone meanwhile, or another user's process
            continue
        if _exe(parent) != _exe(pid):
            try:
                os.kill(int(pid), signal.SIGTERM)
                stopped.append(int(pid))
            except OSError:
                continue
    return stopped


def cmd_generate(args: argparse.Namespace) -> int:
    from orderguard.generate import generate_to_folders

    summary = generate_to_folders(
        out_dir=Path(args.out), labels_dir=Path(args.labels), accounts=args.accounts,
        seed=args.seed, preset=args.preset, days=args.days, fmt=args.format,
        split_days=args.split_days,
    )
    print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    return 0


def scan_options(args: argparse.Namespace):
    from orderguard.scan import ScanOptions

    return ScanOptions(
        input_dir=Path(args.input), out_dir=Path(args.out),
        db_path=Path(args.db) if args.db else config.default_db_path(),
        rules_path=Path(args.rules) if args.rules else None,
        programme_path=Path(args.programme) if args.programme else None,
        models_dir=Path(args.models) if args.models else None,  # beside the warehouse
        encoding=args.encoding, review_budget=args.review_budget, seed=args.seed,
        run_date=args.run_date, lookback_days=getattr(args, "lookback_days", 30),
        keep_days=getattr(args, "keep_days", 90),
        allow_small_export=getattr(args, "allow_small_export", False),
    )


def print_summary(run: dict) -> None:
    s = run["publish"]
    print(f"\norderguard scan of {run['input_dir']} (night {run['run_date']}, run {run['run_id']})")
    for table, c in run["counts"].items():
        print(f"  {table:<12} read {c['read']:>9,}  accepted {c['accepted']:>9,}  "
              f"quarantined {c['quarantined']:>6,}")
    print(f"  orders scored {s['orders_scored']:,}, flagged {s['orders_flagged']:,}; "
          f"accounts flagged {s['accounts_flagged']:,}; rings {s['rings']:,} {s['rings_by_kind']}")
    print(f"  model: {run['scoring']['model_action']} ({run['scoring']['model_path']})")
    if s["top_reasons"]:
        print("  top reasons: " + ", ".join(f"{k} {v}" for k, v in s["top_reasons"].items()))
    out = Path(run["publish"]["published"]).parent.parent
    latest = out / "latest"
    shown = (out / os.readlink(latest)) if latest.is_symlink() else s["published"]
    print(f"  outputs: {s['published']}  (latest -> {shown})")


def prefect_server_answers(api_url: str, timeout: float = 5.0) -> bool:
    """Whether the Prefect API at `api_url` answers its health check."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class _NotFlowRunRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("prefect.flow_runs", "prefect.task_runs"))


def keep_run_records_off_the_terminal() -> None:
    """A failed task's state and traceback stay in the flow run's logs (the UI); on the
    terminal an input error is cmd_scan's one line and a bug Python's own traceback (they
    printed ~60 lines around a missing column)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _NotFlowRunRecords) for f in handler.filters):
            handler.addFilter(_NotFlowRunRecords())


# the machine refused a write: disk full, read-only file system, no permission, a file
# where a folder should be
WRITE_REFUSED = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR)


def refused_errno(exc: OSError) -> int | None:
    """The errno of an OSError; Polars' writers raise theirs without one, with the code
    only in the text ('No space left on device (os error 28)')."""
    if exc.errno is not None:
        return exc.errno
    found = re.search(r"\(os error (\d+)\)", str(exc))
    return int(found.group(1)) if found else None


def cmd_scan(args: argparse.Namespace) -> int:
    import duckdb

    from orderguard.health import ProgrammeConfigError
    from orderguard.history import QuietNightError
    from orderguard.ingest import InputError
    from orderguard.rules import RuleConfigError
    from orderguard.scan import ScanBusyError, run_scan
    from orderguard.warehouse import WarehouseBusyError

    opts = scan_options(args)
    try:
        if args.no_prefect:
            run = run_scan(opts)
        else:
            prefect_environment()
            if (api := os.environ.get("PREFECT_API_URL")) and not prefect_server_answers(api):
                print(f"orderguard: the Prefect server at PREFECT_API_URL={api} does not answer; "
                      "start it (`prefect server start --host 127.0.0.1`), unset PREFECT_API_URL "
                      "to run in Prefect's ephemeral mode, or scan with --no-prefect", file=sys.stderr)
                return 4
            if not os.environ.get("PREFECT_API_URL") and (
                    stopped := stop_orphaned_prefect_servers(Path(os.environ["PREFECT_HOME"]))):
                print(f"orderguard: stopped {len(stopped)} Prefect server(s) left running by a "
                      f"killed scan (pid {', '.join(map(str, stopped))})", file=sys.stderr)
            from pipelines.nightly_scan import ScanParameters, nightly_scan

            keep_run_records_off_the_terminal()

            run = nightly_scan(ScanParameters.from_options(opts))
    except (InputError, QuietNightError) as exc:
        print(f"orderguard: input error: {exc}", file=sys.stderr)
        return 2
    except RuleConfigError as exc:  # raised before any work: nothing was written
        print(f"orderguard: rules error: {exc}", file=sys.stderr)
        return 2
    except ProgrammeConfigError as exc:  # also raised before any work
        print(f"orderguard: programme error: {exc}", file=sys.stderr)
        return 2
    except (ScanBusyError, WarehouseBusyError) as exc:
        print(f"orderguard: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:
        code = refused_errno(exc)
        if code not in WRITE_REFUSED:
            raise
        print(f"orderguard: {exc.strerror or os.strerror(code)}: {exc.filename or 'a file of the scan'}; "
              "nothing of the night was published (the last night's results stand): free space "
              "or fix permissions and rerun", file=sys.stderr)
        return 5
    except duckdb.IOException as exc:  # DuckDB's own writes into the warehouse or its temp files
        if not any(why in str(exc) for why in ("No space left on device", "Permission denied",
                                                 "Read-only file system")):
            raise
        print(f"orderguard: the warehouse could not be written ({' '.join(str(exc).split())[:200]}); "
              "nothing of the night was published: free space or fix permissions and rerun",
              file=sys.stderr)
        return 5
    print_summary(run)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from orderguard.evaluate import MissingFilesError, evaluate_outputs

    try:
        result = evaluate_outputs(Path(args.scan_out), Path(args.labels), budget=args.k)
    except MissingFilesError as exc:
        print(f"orderguard: input error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "evaluation.json").write_text(text, "utf-8")
    print(text)
    return 0


@contextmanager
def scan_free(db: str | None):
    """feedback, allow, train and backtest take the scans' lock (`<warehouse>.lock`) while
    they hold the warehouse: a scan opens it afresh for each stage, and a command slipping
    in between two stages failed the night halfway (exit 3) or wrote into a night being
    published. A missing warehouse is left to warehouse.connect(must_exist=True) to name."""
    from orderguard.scan import ScanBusyError, scan_lock
    from orderguard.warehouse import WarehouseBusyError

    path = Path(db) if db else config.default_db_path()
    with ExitStack() as held:
        if path.is_file():
            try:
                held.enter_context(scan_lock(path))
            except ScanBusyError:
                raise WarehouseBusyError(
                    f"a scan (or another orderguard command) is using {path} (lock "
                    f"{path.name}.lock): run this again once it has finished") from None
        yield


def cmd_feedback(args: argparse.Namespace) -> int:
    from orderguard import feedback, warehouse

    with scan_free(args.db), warehouse.connect(Path(args.db) if args.db else None,
                                               must_exist=True) as con:
        try:
            result = feedback.load_verdicts(con, Path(args.verdicts))
        except feedback.VerdictError as exc:
            print(f"orderguard: {exc}", file=sys.stderr)
            return 2
        scored = warehouse.table_exists(con, "marts", "order_scores")
        precision = feedback.rule_precision(con) if scored else None
    print(f"stored {result['stored']} verdicts ({result['confirmed']} confirmed, "
          f"{result['false_positive']} false positive), rejected {result['rejected']}, "
          f"undecided (skipped) {result['undecided']}, changed {result['changed']}")
    for line in result["problems"]:
        print("  " + line)
    if result["rejected"] > len(result["problems"]):
        print(f"  ... and {result['rejected'] - len(result['problems'])} more")
    for line in result["notes"]:
        print("  note: " + line)
    if result["more_notes"]:
        print(f"  ... and {result['more_notes']} more notes")
    if precision is not None and precision.height:
        print("per-rule precision among orders with verdicts (code, orders with a verdict, precision):")
        for code, verdicts, share in precision.iter_rows():
            print(f"  {code:<24} {verdicts:>7}  {share:.2f}")
    return 2 if result["rejected"] else 0  # the usable rows are stored either way


def cmd_train(args: argparse.Namespace) -> int:
    from orderguard import detect, scoring, warehouse

    db = Path(args.db) if args.db else None
    with scan_free(args.db), warehouse.connect(db, read_only=True, must_exist=True) as con:
        accounts = detect._account_frame(con)
        window = warehouse.query(
            con, "select min(created_at) as start, max(created_at) as end from staging.orders"
        ).row(0, named=True)
    forest = scoring.AccountForest(random_state=args.seed).fit(accounts)
    models = Path(args.models) if args.models else config.models_dir(args.db)
    path = scoring.save_forest(
        forest, models, {"training_window": window, "trained_on_accounts": accounts.height}
    )
    print(f"trained the isolation forest on {accounts.height:,} accounts -> {path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    prefect_environment()
    if not os.environ.get("PREFECT_API_URL"):
        print("orderguard: serving a schedule needs a Prefect server; start one with "
              "`prefect server start --host 127.0.0.1` and set "
              "PREFECT_API_URL=http://127.0.0.1:4200/api", file=sys.stderr)
        return 2
    if not prefect_server_answers(api := os.environ["PREFECT_API_URL"]):
        print(f"orderguard: the Prefect server at PREFECT_API_URL={api} does not answer; start it "
              "(`prefect server start --host 127.0.0.1`)", file=sys.stderr)
        return 4
    # what would otherwise fail only at 02:00, in the first scheduled run: the schedule, the
    # rules and programme files and the DuckDB settings
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    from orderguard.health import ProgrammeConfigError, load_programme
    from orderguard.rules import RuleConfigError, load_rules

    try:
        CronSchedule(cron=args.cron, timezone=args.timezone)
    except ValidationError as exc:
        problems = "; ".join(err["msg"] for err in exc.errors())
        print(f"orderguard: --cron {args.cron!r} --timezone {args.timezone!r}: {problems}", file=sys.stderr)
        return 2
    try:
        load_rules(args.rules)
    except RuleConfigError as exc:
        print(f"orderguard: rules error: {exc}", file=sys.stderr)
        return 2
    try:
        load_programme(args.programme)
    except ProgrammeConfigError as exc:
        print(f"orderguard: programme error: {exc}", file=sys.stderr)
        return 2
    config.check_environment()
    from pipelines.deployments import serve_nightly
    from pipelines.nightly_scan import ScanParameters

    params = ScanParameters.from_options(scan_options(args))
    params.input_dir = args.input  # keep a {date} template as given
    serve_nightly(params, cron=args.cron, timezone=args.timezone, name=args.name)
    return 0


def cmd_allow(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta

    from orderguard import allowlist, warehouse

    with scan_free(args.db), warehouse.connect(Path(args.db) if args.db else None,
                                               must_exist=True) as con:
        if args.list:  # every entry in force, whole values, as CSV to read or pipe on
            from orderguard.publish import neutralise_formulas

            # with a BOM and no cell Excel would run, as every CSV support opens: the reasons
            # are typed by people, often in Chinese
            listed = neutralise_formulas(allowlist.active(con, config.local_now()))
            sys.stdout.write("\ufeff" + listed.write_csv())
            return 0
        chosen = [(t, getattr(args, t)) for t in allowlist.ENTITY_TYPES if getattr(args, t)]
        if len(chosen) != 1:
            print("orderguard: name exactly one of --account, --device, --address, --shop", file=sys.stderr)
            return 2
        try:
            until = (datetime.fromisoformat(args.until) if args.until
                     else config.local_now() + timedelta(days=args.days))
        except ValueError:
            print(f"orderguard: --until {args.until!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
            return 2
        if until <= config.local_now():
            print(f"orderguard: --until {until:%Y-%m-%d %H:%M} has passed: the entry would never "
                  "apply", file=sys.stderr)
            return 2
        entity, given = chosen[0]
        try:
            value = allowlist.add(con, entity, given, args.reason or "", until, args.by)
        except allowlist.AllowListError as exc:
            print(f"orderguard: {exc}", file=sys.stderr)
            return 2
        unseen = allowlist.unseen(con, entity, value)
    shown = value if value == given.strip() else f"{value} (from {given.strip()!r})"
    print(f"allow-listed {entity} {shown} until {until:%Y-%m-%d %H:%M}")
    if unseen:
        where = "in the last scan's window" if entity in ("device", "address") else "in the warehouse"
        print(f"note: no {entity} {value!r} {where} yet (a typo?); the entry applies if it appears",
              file=sys.stderr)
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from datetime import date

    from orderguard import warehouse
    from orderguard.backtest import run_backtest
    from orderguard.rules import RuleConfigError, load_rules

    try:
        live = load_rules(args.live)
        candidate = load_rules(args.config)
    except (RuleConfigError, OSError) as exc:
        print(f"orderguard: {exc}", file=sys.stderr)
        return 2
    db = Path(args.db) if args.db else None
    with scan_free(args.db), warehouse.connect(db, read_only=True, must_exist=True) as con:
        try:
            table = run_backtest(con, live, candidate, date.fromisoformat(args.date_from),
                                 date.fromisoformat(args.date_to))
        except ValueError as exc:
            print(f"orderguard: {exc}", file=sys.stderr)
            return 2
    import polars as pl

    print(f"backtest of {args.config} against {live.source}")
    # every day and column, one line per day however narrow the terminal
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=400, tbl_hide_dataframe_shape=True):
        print(table)
    if args.out:
        table.write_csv(args.out, include_bom=True)
        print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orderguard",
        description="Find fake orders, brushing farms and self-referral rings in distribution-shop "
        "exports. Typical night: `orderguard scan --input EXPORT_DIR --out OUT_DIR`.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each stage")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write a synthetic world (inputs + separate labels)",
                       description="Generate a synthetic distribution-shop world in the data "
                       "contract, with fraud rings and honest look-alike crowds. Labels go to a "
                       "separate folder, never into the inputs.")
    g.add_argument("--out", required=True, help="folder for the input tables")
    g.add_argument("--labels", required=True, help="folder for the ground-truth labels")
    g.add_argument("--accounts", type=int, default=5000, help="accounts in the world (default 5000)")
    g.add_argument("--seed", type=int, default=7, help="random seed: the same seed writes the same world")
    g.add_argument("--preset", default="default", choices=["easy", "default", "hard"],
                   help="camouflage level (hard: farms that look honest account by account)")
    g.add_argument("--days", type=int, default=30, help="days of activity (default 30)")
    g.add_argument("--format", default="csv", choices=["csv", "parquet"],
                   help="file format of the input tables (default csv)")
    g.add_argument("--split-days", action="store_true", help="one export folder per day")
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser("scan", help="run the nightly scan on an export folder",
                       description="Ingest an export folder into DuckDB, validate it (bad rows go "
                       "to quarantine.csv), build identity/referral/co-buying graphs, score every "
                       "order and publish flagged_orders.csv, flagged_accounts.csv, rings.csv, "
                       "report.html, order_scores.parquet and run.json into --out.")
    s.add_argument("--input", required=True, help="export folder (orders, accounts, products, commissions)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--db", help=f"DuckDB warehouse file (default {config.default_db_path()})")
    s.add_argument("--rules", help="rules TOML (default: the package's rules.toml)")
    s.add_argument("--programme", help="the distribution programme TOML: commission rates per "
                   "level and shop, allowed levels, scorecard thresholds (default: the package's "
                   "programme.toml; copy it to start)")
    s.add_argument("--models", help="model folder (default models/ for the default warehouse, "
                   "<warehouse name>.models/ beside any other)")
    s.add_argument("--encoding", help="CSV encoding (default: detect UTF-8/GBK)")
    s.add_argument("--review-budget", type=int, help="flag at most this many orders per day")
    s.add_argument("--run-date", help="the night being scanned, YYYY-MM-DD (default: last order date)")
    s.add_argument("--seed", type=int, default=7,
                   help="random seed of the models fitted tonight (same seed, same scores)")
    s.add_argument("--lookback-days", type=int, default=30,
                   help="nights of history the features and graphs see (default 30)")
    s.add_argument("--keep-days", type=int, default=90,
                   help="nights of history kept in the warehouse, at least --lookback-days; "
                   "older orders, scoring inputs and published night folders are forgotten "
                   "(default 90)")
    s.add_argument("--allow-small-export", action="store_true",
                   help="scan a night far smaller than usual instead of failing")
    s.add_argument("--no-prefect", action="store_true", help="run the stages without Prefect")
    s.set_defaults(func=cmd_scan)

    e = sub.add_parser("evaluate", help="measure a scan's outputs against generator labels",
                       description="Average precision, ROC-AUC, precision/recall at K, recall per "
                       "fraud kind, ring recall and purity, honest crowds flagged.")
    e.add_argument("--scan-out", required=True, help="the scan's --out folder")
    e.add_argument("--labels", required=True, help="labels folder written by `generate`")
    e.add_argument("--k", type=int, help="review budget K (default: number of true fake orders)")
    e.add_argument("--out", help="folder for evaluation.json")
    e.set_defaults(func=cmd_evaluate)

    f = sub.add_parser("feedback", help="store support's verdicts and show per-rule precision",
                       description="Read a verdict file (order_id or account_id, verdict = "
                       "confirmed | false_positive, note) into ops.verdicts. Once enough verdicts "
                       "with both outcomes exist, the next scan trains a supervised model on them.")
    f.add_argument("--verdicts", required=True, help="CSV filled in by support")
    f.add_argument("--db", help="DuckDB warehouse file")
    f.set_defaults(func=cmd_feedback)

    t = sub.add_parser("train", help="refit the isolation forest on the warehouse's accounts",
                       description="Fit the graph-aware isolation forest on the accounts of the last "
                       "scan in the warehouse and save it under models/ with a .meta.json.")
    t.add_argument("--db", help="DuckDB warehouse file")
    t.add_argument("--models", help="model folder (default models/ for the default warehouse, "
                   "<warehouse name>.models/ beside any other)")
    t.add_argument("--seed", type=int, default=7, help="random seed of the forest (default 7)")
    t.set_defaults(func=cmd_train)

    v = sub.add_parser("serve", help="serve the nightly scan on a cron schedule (Prefect)",
                       description="Register the nightly-scan deployment with the Prefect server in "
                       "PREFECT_API_URL and run its scheduled runs until stopped. --input may hold "
                       "{date}, filled with the night being scanned (yesterday, Asia/Shanghai).")
    v.add_argument("--input", required=True, help="export folder, e.g. exports/{date}")
    v.add_argument("--out", required=True, help="output folder")
    v.add_argument("--db", help="DuckDB warehouse file")
    v.add_argument("--rules", help="rules TOML")
    v.add_argument("--programme", help="programme TOML (default: the package's programme.toml)")
    v.add_argument("--models", help="model folder (default: as for scan)")
    v.add_argument("--encoding", help="CSV encoding (default: detect UTF-8/GBK)")
    v.add_argument("--review-budget", type=int, help="flag at most this many orders per day")
    v.add_argument("--seed", type=int, default=7, help="random seed of the models fitted each night")
    v.add_argument("--run-date", help=argparse.SUPPRESS)
    v.add_argument("--lookback-days", type=int, default=30,
                   help="nights of history the features and graphs see (default 30)")
    v.add_argument("--keep-days", type=int, default=90,
                   help="nights of history kept in the warehouse (default 90)")
    v.add_argument("--allow-small-export", action="store_true",
                   help="scan a night far smaller than usual instead of failing")
    v.add_argument("--cron", default="0 2 * * *", help="cron schedule (default 02:00)")
    v.add_argument("--timezone", default="Asia/Shanghai", help="time zone of --cron (default Asia/Shanghai)")
    v.add_argument("--name", default="nightly", help="deployment name")
    v.set_defaults(func=cmd_serve)

    a = sub.add_parser("allow", help="clear an account/device/address/shop until a date (snooze)",
                       description="Entities support has cleared stop raising alerts until the entry "
                       "expires; their orders keep their score, drop to risk level low, and the "
                       "report lists what was suppressed. --list shows entries in force.")
    a.add_argument("--account", help="an account id as in the export")
    a.add_argument("--device", help="a device id as in the export (matched case-insensitively)")
    a.add_argument("--address", help="a receiver address as on the order, with its building (and "
                   "room): clears that flat, or that building when no room is given; or a key "
                   "as in the marts ('城市|区|小区|B3|U2|R1202')")
    a.add_argument("--shop", help="a shop id as in the export")
    a.add_argument("--reason", help="why it is cleared (required)")
    a.add_argument("--until", help="expiry, YYYY-MM-DD[THH:MM] (default: --days from now)")
    a.add_argument("--days", type=int, default=30,
                   help="days the entry lasts when --until is not given (default 30)")
    a.add_argument("--by", default="support", help="who cleared it")
    a.add_argument("--list", action="store_true", help="list entries in force")
    a.add_argument("--db", help="DuckDB warehouse file")
    a.set_defaults(func=cmd_allow)

    b = sub.add_parser("backtest", help="replay stored nights with a changed rules file",
                       description="Score the stored nights between --from and --to with the live "
                       "rules and with --config, and report per day how many orders each flags, "
                       "the overlap and precision where verdicts exist. Nothing is changed.")
    b.add_argument("--config", required=True, help="candidate rules TOML")
    b.add_argument("--live", help="live rules TOML (default: the package's rules.toml)")
    b.add_argument("--from", dest="date_from", required=True, help="first order day, YYYY-MM-DD")
    b.add_argument("--to", dest="date_to", required=True, help="last order day, YYYY-MM-DD")
    b.add_argument("--db", help="DuckDB warehouse file")
    b.add_argument("--out", help="write the table as CSV")
    b.set_defaults(func=cmd_backtest)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logger = logging.getLogger("orderguard")
        logger.setLevel(logging.INFO)
        # this call's stderr replaces an earlier call's; other handlers (Prefect's, which
        # sends the lines to the flow run's logs) stay
        for old in [h for h in logger.handlers if getattr(h, "orderguard_cli", False)]:
            logger.removeHandler(old)
        console = logging.StreamHandler(sys.stderr)
        console.orderguard_cli = True
        logger.addHandler(console)
        logger.propagate = False
    from orderguard.warehouse import WarehouseBusyError, WarehouseMissingError, WarehouseTooNewError

    try:
        return int(args.func(args) or 0)
    except config.ScanOptionsError as exc:
        print(f"orderguard: {exc}", file=sys.stderr)
        return 2
    except WarehouseBusyError as exc:  # feedback, train, allow, backtest while a scan runs
        print(f"orderguard: {exc}", file=sys.stderr)
        return 3
    except WarehouseMissingError as exc:
        print(f"orderguard: {exc}", file=sys.stderr)
        return 2
    except WarehouseTooNewError as exc:  # any command, before it changed anything
        print(f"orderguard: {exc}", file=sys.stderr)
        return 6


if __name__ == "__main__":
    sys.exit(main())
