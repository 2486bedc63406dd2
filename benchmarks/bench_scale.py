"""Platform scale: the full scan at 1M and 10M orders against DuckDB's own floor.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000000 10000000] [--formats csv parquet]
        [--work /tmp/og-scale] [--out benchmarks/results/scale.json]

For each size it generates a world in the data contract (CSV and Parquet), measures in the
same run the floor (DuckDB alone loads the orders and counts distinct buyers per device,
address, payer and IP; in memory, the headline, and into a database file as the scan's
warehouse is), then runs `orderguard scan --no-prefect` in a child process and
records wall time, CPU time and peak resident memory for the whole scan and per stage
(from run.json and the child's rusage), the ratio to the floor and the growth from the
smallest to the largest size. Nothing here is a test; figures are written to JSON.
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
from pathlib import Path

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


def scan(input_dir: Path, work: Path) -> dict:
    out, db = work / "out", work / "wh.duckdb"
    shutil.rmtree(out, ignore_errors=True)
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    result = child([sys.executable, "-m", "orderguard.cli", "scan", "--input", str(input_dir),
                    "--out", str(out), "--db", str(db), "--models", str(work / "models"),
                    "--no-prefect"], env={**os.environ})
    run = json.loads((out / "run.json").read_text("utf-8"))
    result.pop("stdout")
    result["stages_s"] = run["stage_seconds"]
    result["stages_cpu_s"] = run.get("stage_cpu_seconds", {})
    peaks = run.get("stage_peak_rss_mib", {})
    result["stages_peak_rss_gib"] = {k: round(v / 1024, 2) for k, v in peaks.items()}
    result["orders_scored"] = run["summary"]["orders_scored"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000_000, 10_000_000])
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet"])
    parser.add_argument("--work", default="/tmp/og-scale")
    parser.add_argument("--out", default="benchmarks/results/scale.json")
    args = parser.parse_args(argv)
    from orderguard.generate import generate_to_folders

    results: dict = {"machine": {"cores": os.cpu_count()}, "runs": {}}
    work = Path(args.work)
    for size in sorted(args.sizes):
        for fmt in args.formats:
            folder = work / f"{size}-{fmt}"
            if not (folder / "in" / f"orders.{fmt}").exists():
                shutil.rmtree(folder, ignore_errors=True)
                started = time.perf_counter()
                generate_to_folders(folder / "in", folder / "labels",
                                    accounts=math.ceil(size / ORDERS_PER_ACCOUNT), seed=5,
                                    preset="hard", fmt=fmt)
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
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2), "utf-8")  # partial results
            print(f"{size:>11,} {fmt:<8} floor {f['wall_s']:>6.1f} s  scan {s['wall_s']:>7.1f} s "
                  f"(x{s['ratio_to_floor']}) peak {s['peak_rss_gib']} GiB  stages {s['stages_s']}",
                  flush=True)
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
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2), "utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
