"""Night after night into one warehouse: does its file stop growing once the window is full?

    .venv/bin/python benchmarks/bench_nights.py [--accounts 40000] [--days 75]
        [--lookback-days 30] [--keep-days 30] [--work /tmp/og-nights]
        [--out benchmarks/results/nights.json]

Generates one world over `--days` days as nightly exports (`orderguard generate
--split-days`: each night's orders and the day's updates to older ones), then scans every
night in order into one warehouse, as the scheduled scan does, each scan in a child process.
Per night it records wall and CPU seconds, peak memory, the window's and tonight's orders,
the warehouse file's size and how much of it DuckDB holds free for reuse, and the rows of
the kept history. The summary compares the file once the history reaches `--keep-days`
nights with the last night: a warehouse that forgets old nights should stop growing there
(DuckDB reuses freed blocks; it never shrinks its file). Nothing here is a test.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import scan, write_results  # noqa: E402

MIB = 1024**2


def warehouse_facts(db: Path) -> dict:
    """File size, DuckDB's free space in it, and the kept history's rows."""
    with duckdb.connect(str(db), read_only=True) as con:
        block_size, total, free = con.execute(
            "select block_size, total_blocks, free_blocks from pragma_database_size()").fetchall()[0]
        orders, inputs = con.execute(
            "select (select count(*) from staging.orders_history), "
            "(select count(*) from ops.feature_history)").fetchall()[0]
    return {"file_mib": round(db.stat().st_size / MIB, 1),
            "blocks_mib": round(total * block_size / MIB, 1),
            "free_mib": round(free * block_size / MIB, 1),
            "history_orders": orders, "feature_history_rows": inputs}


def summarise(nights: list[dict], keep_days: int) -> dict:
    """The file when the kept history first spans `keep_days` nights against the last night,
    and the largest file on the way."""
    full = nights[min(keep_days, len(nights)) - 1]
    last = nights[-1]
    later = nights[keep_days - 1:] if len(nights) >= keep_days else nights
    return {
        "nights": len(nights),
        "file_mib_when_history_full": full["file_mib"],
        "file_mib_last_night": last["file_mib"],
        "file_mib_max_after_full": max(n["file_mib"] for n in later),
        "growth_after_full_mib_per_night": round(
            (last["file_mib"] - full["file_mib"]) / max(len(nights) - keep_days, 1), 2),
        "wall_s_last_night": last["wall_s"],
        "peak_rss_gib_max": max(n["peak_rss_gib"] for n in nights),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=40_000)
    parser.add_argument("--days", type=int, default=75)
    parser.add_argument("--lookback-days", type=int, default=30)
    parser.add_argument("--keep-days", type=int, default=30)
    parser.add_argument("--work", default="/tmp/og-nights")
    parser.add_argument("--out", default="benchmarks/results/nights.json")
    args = parser.parse_args(argv)
    from orderguard.generate import generate_to_folders

    work = Path(args.work) / f"{args.accounts}-{args.days}d"
    exports = work / "in"
    if len(list(exports.glob("*/orders.csv"))) != args.days:
        shutil.rmtree(work, ignore_errors=True)
        generate_to_folders(exports, work / "labels", accounts=args.accounts, seed=5,
                            preset="hard", days=args.days, split_days=True)
    scanned = work / "scanned"  # bench_scale.scan's layout: wh.duckdb, models, out
    shutil.rmtree(scanned, ignore_errors=True)
    extra = ("--lookback-days", str(args.lookback_days), "--keep-days", str(args.keep_days),
             "--allow-small-export")
    nights: list[dict] = []
    started = time.perf_counter()
    for number, folder in enumerate(sorted(p for p in exports.iterdir() if p.is_dir())):
        result = scan(folder, scanned, fresh=number == 0, extra=extra)
        night = {"night": folder.name, "wall_s": result["wall_s"], "cpu_s": result["cpu_s"],
                 "peak_rss_gib": result["peak_rss_gib"], "orders_tonight": result["orders_scored"],
                 "window_orders": result["window_orders"],
                 **warehouse_facts(scanned / "wh.duckdb")}
        nights.append(night)
        print(f"{night['night']}: {night['wall_s']} s, window {night['window_orders']:,} orders, "
              f"file {night['file_mib']} MiB ({night['free_mib']} MiB free)", flush=True)
    results = {"accounts": args.accounts, "days": args.days, "lookback_days": args.lookback_days,
               "keep_days": args.keep_days, "seconds": round(time.perf_counter() - started, 1),
               "summary": summarise(nights, args.keep_days), "nights": nights}
    write_results(Path(args.out), results)
    print(f"{results['summary']}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
