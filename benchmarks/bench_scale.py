"""Platform scale: the full scan at 1M and 10M orders against DuckDB's own floor.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000000 10000000] [--formats csv parquet]
        [--work /tmp/og-scale] [--out benchmarks/results/scale.json] [--steady-night]

For each size it generates a world in the data contract (CSV and Parquet), measures in the
same run the floor (DuckDB alone loads the orders and counts distinct buyers per device,
address, payer and IP; in memory, the headline, and into a database file as the scan's
warehouse is), then runs `orderguard scan --no-prefect` in a child process and
records wall time, CPU time and peak resident memory for the whole scan and per stage
(from run.json and the child's rusage), the ratio to the floor and the growth from the
smallest to the largest size. With --steady-night it also times a usual night at each size:
the export is split into a backfill of all days but the last and the last day's nightly
export, both scanned into one warehouse; the second scan (one day's orders over the full
lookback window) is what every later night costs. Nothing here is a test; figures are
written to JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import polars as pl

ORDERS_PER_ACCOUNT = 5.0
FLOOR_SQL = """
create table o as select * from {reader}($path{options});
select count(distinct buyer_id) from o group by device_id;
select count(distinct buyer_id) from o group by address;
select count(distinct buyer_id) from o group by payment_account;
select count(distinct buyer_id) from o group by ip;
"""


def child(cmd: list[str], env: dict | None = None) -> dict:
    """Run a command under /usr/bin/time: its wall time, CPU time and peak RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        proc = subprocess.run(["/usr/bin/time", "-o", stats.name, "-f", "%e %U %S %M", *cmd],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[:4]} failed:\n{proc.stderr[-3000:]}")
        wall, user, system, max_kib = stats.read().split()[-4:]
    return {
        "wall_s": round(float(wall), 1),
        "cpu_s": round(float(user) + float(system), 1),
        "peak_rss_gib": round(int(max_kib) / 1024**2, 2),
        "stdout": proc.stdout,
    }


def floor(orders_path: Path, database: str = ":memory:") -> dict:
    """DuckDB alone: load the orders and count distinct buyers per identifier, into memory
    (the headline floor) or into a database file like the scan's warehouse."""
    reader = "read_parquet" if orders_path.suffix == ".parquet" else "read_csv"
    options = "" if reader == "read_parquet" else ", header=true"
    if database != ":memory:":
        Path(database).unlink(missing_ok=True)
    script = (
        "import duckdb, sys\n"
        "con = duckdb.connect(sys.argv[2])\n"
        f"sql = {FLOOR_SQL!r}.format(reader={reader!r}, options={options!r})\n"
        "for statement in [s for s in sql.split(';') if s.strip()]:\n"
        "    con.execute(statement, {'path': sys.argv[1]} if '$path' in statement else None).fetchall()\n"
    )
    try:
        return child([sys.executable, "-c", script, str(orders_path), database])
    finally:
        if database != ":memory:":
            Path(database).unlink(missing_ok=True)


def scan(input_dir: Path, work: Path, fresh: bool = True, extra: tuple[str, ...] = ()) -> dict:
    """`orderguard scan` of one export into work/wh.duckdb (a new warehouse when `fresh`)."""
    out, db = work / "out", work / "wh.duckdb"
    shutil.rmtree(out, ignore_errors=True)
    if fresh:
        for p in (db, Path(str(db) + ".wal")):
            p.unlink(missing_ok=True)
    result = child([sys.executable, "-m", "orderguard.cli", "scan", "--input", str(input_dir),
                    "--out", str(out), "--db", str(db), "--models", str(work / "models"),
                    "--no-prefect", *extra], env={**os.environ})
    run = json.loads((out / "run.json").read_text("utf-8"))
    result.pop("stdout")
    result["stages_s"] = run["stage_seconds"]
    result["stages_cpu_s"] = run.get("stage_cpu_seconds", {})
    peaks = run.get("stage_peak_rss_mib", {})
    result["stages_peak_rss_gib"] = {k: round(v / 1024, 2) for k, v in peaks.items()}
    result["orders_scored"] = run["summary"]["orders_scored"]
    result["window_orders"] = run["window"]["window_orders"]
    return result


def read_export(folder: Path, fmt: str) -> dict:
    """An export folder as Polars frames: timestamps parsed, every other value kept as text
    (so it is written back byte for byte)."""
    from orderguard.contract import TABLES, TIMESTAMP
    from orderguard.generate import TIME_FORMAT

    frames = {}
    for name in ("orders", "accounts", "commissions", "products"):
        if fmt == "parquet":
            frames[name] = pl.read_parquet(folder / f"{name}.parquet")
            continue
        stamps = [c.name for c in TABLES[name].columns if c.type == TIMESTAMP]
        frames[name] = pl.read_csv(folder / f"{name}.csv", infer_schema=False).with_columns(
            pl.col(stamps).str.to_datetime(TIME_FORMAT))
    return frames


def steady_night(folder: Path, fmt: str) -> dict:
    """A usual night at this window size: the export split into a backfill of every day but
    the last (the first night, loading history) and the last day's nightly export (orders
    created that day plus updates to older ones); both are scanned into one warehouse and
    the second scan is the figure."""
    from orderguard.generate import backfill_export, night_export, write_table

    work = folder / "steady"
    exports = {"backfill": work / "backfill", "night": work / "night"}
    if not (exports["night"] / f"orders.{fmt}").exists():
        started = time.perf_counter()
        world = read_export(folder / "in", fmt)
        last = world["orders"]["created_at"].max().date()
        tables = world["orders"], world["accounts"], world["commissions"], world["products"]
        for name, split, day in (("backfill", backfill_export, last - timedelta(days=1)),
                                 ("night", night_export, last)):
            exports[name].mkdir(parents=True, exist_ok=True)
            for table, df in split(*tables, day).items():
                write_table(df, exports[name] / table, fmt)
        print(f"split {folder.name} into a backfill and a night in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    backfill = scan(exports["backfill"], work)
    # after a 29-day backfill one day's export is far below the "usual" night: it is real
    night = scan(exports["night"], work, fresh=False, extra=("--allow-small-export",))
    return {"backfill": backfill, "night": night}


def write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2), "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000_000, 10_000_000])
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet"])
    parser.add_argument("--work", default="/tmp/og-scale")
    parser.add_argument("--out", default="benchmarks/results/scale.json")
    parser.add_argument("--steady-night", action="store_true",
                        help="also time a usual night: a backfill of all days but the last, "
                             "then the last day's export over the full window")
    args = parser.parse_args(argv)
    from orderguard.generate import generate_to_folders

    results: dict = {"machine": {"cores": os.cpu_count()}, "runs": {}}
    work = Path(args.work)
    for size in sorted(args.sizes):
        for fmt in args.formats:
            folder = work / f"{size}-{fmt}"
            # a world is reused only when its generation finished (one killed halfway left
            # orders.csv without accounts.csv, and the next run scanned that)
            if not (folder / "generated").exists():
                shutil.rmtree(folder, ignore_errors=True)
                started = time.perf_counter()
                generate_to_folders(folder / "in", folder / "labels",
                                    accounts=math.ceil(size / ORDERS_PER_ACCOUNT), seed=5,
                                    preset="hard", fmt=fmt)
                (folder / "generated").touch()
                print(f"generated {size:,} orders ({fmt}) in {time.perf_counter() - started:.0f} s",
                      flush=True)
            f = floor(folder / "in" / f"orders.{fmt}")
            f.pop("stdout")
            on_disk = floor(folder / "in" / f"orders.{fmt}", str(folder / "floor.duckdb"))
            on_disk.pop("stdout")
            f["into_database_file"] = on_disk
            s = scan(folder / "in", folder)
            s["ratio_to_floor"] = round(s["wall_s"] / max(f["wall_s"], 0.1), 2)
            s["ratio_to_file_floor"] = round(s["wall_s"] / max(on_disk["wall_s"], 0.1), 2)
            results["runs"][f"{size}-{fmt}"] = {"orders": size, "format": fmt, "floor": f, "scan": s}
            write_results(Path(args.out), results)  # partial results
            print(f"{size:>11,} {fmt:<8} floor {f['wall_s']:>6.1f} s  scan {s['wall_s']:>7.1f} s "
                  f"(x{s['ratio_to_floor']}) peak {s['peak_rss_gib']} GiB  stages {s['stages_s']}",
                  flush=True)
            if args.steady_night:
                steady = steady_night(folder, fmt)
                results["runs"][f"{size}-{fmt}"]["steady_night"] = steady
                write_results(Path(args.out), results)
                print(f"{size:>11,} {fmt:<8} a usual night: {steady['night']['orders_scored']:,} "
                      f"orders tonight, {steady['night']['window_orders']:,} in the window, "
                      f"{steady['night']['wall_s']:.1f} s, peak {steady['night']['peak_rss_gib']} "
                      f"GiB, stages {steady['night']['stages_s']}", flush=True)
    sizes = sorted(args.sizes)
    if len(sizes) > 1:
        for fmt in args.formats:
            small = results["runs"][f"{sizes[0]}-{fmt}"]["scan"]["wall_s"]
            large = results["runs"][f"{sizes[-1]}-{fmt}"]["scan"]["wall_s"]
            growth = large / small
            results[f"growth_{fmt}"] = {
                "time_ratio": round(growth, 2),
                "cost_exponent": round(math.log(growth) / math.log(sizes[-1] / sizes[0]), 3),
            }
    write_results(Path(args.out), results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
