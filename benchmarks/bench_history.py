"""Months of nights: a usual night when the warehouse holds more history than the window.

    .venv/bin/python benchmarks/bench_history.py [--accounts 200000] [--days 90]
        [--lookback-days 30] [--keep-days 90 30] [--work /tmp/og-history]
        [--out benchmarks/results/history.json]

Generates one world over `--days` days (CSV, hard preset), loads every day but the last as
a first night (a backfill), then scans the last day's nightly export (orders created that
day plus late updates to older ones) once per `--keep-days` value, each on its own copy of
the backfilled warehouse. It records for each: the night's wall time, CPU time and peak
memory (the scan runs in a child process), per-stage seconds, the orders in the window and
in the history before and after, the rows the night forgot, and the warehouse file's size.
Nothing here is a test; figures are written to JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import read_export, scan, write_results  # noqa: E402


def history_orders(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select count(*) from staging.orders_history").fetchall()[0][0]


def window_of(work: Path) -> dict:
    """From the scanned night's run.json: where its window started and what it forgot."""
    window = json.loads((work / "out" / "run.json").read_text("utf-8"))["window"]
    return {"window_start": window["window_start"], "forgotten": window.get("forgotten", {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--lookback-days", type=int, default=30)
    parser.add_argument("--keep-days", type=int, nargs="+", default=[90, 30])
    parser.add_argument("--work", default="/tmp/og-history")
    parser.add_argument("--out", default="benchmarks/results/history.json")
    args = parser.parse_args(argv)
    from orderguard.generate import backfill_export, generate_to_folders, night_export, write_table

    work = Path(args.work) / f"{args.accounts}-{args.days}d"
    world_dir, backfill_dir, night_dir = work / "in", work / "backfill", work / "night"
    if not (night_dir / "orders.csv").exists():
        shutil.rmtree(work, ignore_errors=True)
        started = time.perf_counter()
        generate_to_folders(world_dir, work / "labels", accounts=args.accounts, seed=5,
                            preset="hard", days=args.days)
        world = read_export(world_dir, "csv")
        last = world["orders"]["created_at"].max().date()
        tables = world["orders"], world["accounts"], world["commissions"], world["products"]
        for folder, split, day in ((backfill_dir, backfill_export, last - timedelta(days=1)),
                                   (night_dir, night_export, last)):
            folder.mkdir(parents=True, exist_ok=True)
            for table, df in split(*tables, day).items():
                write_table(df, folder / table, "csv")
        print(f"generated {args.days} days and split them in {time.perf_counter() - started:.0f} s",
              flush=True)

    results: dict = {"accounts": args.accounts, "days": args.days,
                     "lookback_days": args.lookback_days, "nights": {}}
    window_args = ("--lookback-days", str(args.lookback_days))
    backfilled = work / "backfilled"  # bench_scale.scan's layout: wh.duckdb, models, out
    if not (backfilled / "wh.duckdb").exists():
        # the first night loads every day but the last (nothing is forgotten on a first night:
        # all its orders are tonight's)
        first = scan(backfill_dir, backfilled,
                     extra=(*window_args, "--keep-days", str(max(args.keep_days))))
        results["backfill"] = first
        print(f"backfill: {first['orders_scored']:,} orders in {first['wall_s']} s", flush=True)
    for keep in args.keep_days:
        night_work = work / f"keep{keep}"
        shutil.rmtree(night_work, ignore_errors=True)
        shutil.copytree(backfilled / "models", night_work / "models")
        shutil.copy(backfilled / "wh.duckdb", night_work / "wh.duckdb")
        before = history_orders(night_work / "wh.duckdb")
        # after a backfill of months one day's export is far below the "usual" night: it is real
        night = scan(night_dir, night_work, fresh=False,
                     extra=(*window_args, "--keep-days", str(keep), "--allow-small-export"))
        night.update(window_of(night_work), history_orders_before=before,
                     history_orders_after=history_orders(night_work / "wh.duckdb"),
                     warehouse_gib=round((night_work / "wh.duckdb").stat().st_size / 1024**3, 2))
        results["nights"][f"keep_{keep}"] = night
        write_results(Path(args.out), results)
        print(f"keep {keep} nights: {night['orders_scored']:,} orders tonight, "
              f"{night['window_orders']:,} in the window, history {before:,} -> "
              f"{night['history_orders_after']:,}, {night['wall_s']} s, peak "
              f"{night['peak_rss_gib']} GiB, stages {night['stages_s']}", flush=True)
        shutil.rmtree(night_work)
    write_results(Path(args.out), results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
