"""Benchmark: the cost of one partition (ingest + validate + Parquet out) and of the central
stages, on a generated world split by shop group.

    .venv/bin/python benchmarks/bench_partitions.py [--accounts 40000] [--partitions 2]

Generates a world (--accounts 40000 gives about 200k orders over 30 days), splits its orders
by shop into --partitions folders (all accounts and products in each), then

  1. runs partitions.validate_partition on each folder in a fresh process of its own, one
     after the other (seconds and peak RSS per partition: what one Dask worker pays);
  2. loads their outputs with partitions.load_partitions into a fresh warehouse (the
     central writer alone);
  3. runs the whole partitioned scan (scan.run_scan with PartitionedStages, sequential): the
     central load and the central stages (features, graphs, score, publish) over all orders.

Writes benchmarks/results/partitions.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from orderguard import partitions, warehouse
from orderguard.generate import generate_to_folders
from orderguard.scan import ScanOptions, run_scan

RESULTS = Path(__file__).parent / "results" / "partitions.json"




def one_partition(folder: str, out_dir: str) -> dict:
    started = time.perf_counter()
    manifest = partitions.validate_partition(folder, out_dir, "bench")
    return {
        "partition": manifest["name"],
        "orders": manifest["counts"]["orders"]["read"],
        "accounts": manifest["counts"]["accounts"]["read"],
        "input_mb": round(sum(p.stat().st_size for p in Path(folder).iterdir()) / 1e6, 1),
        "parquet_out_mb": round(sum(p.stat().st_size for p in Path(out_dir).iterdir()) / 1e6, 1),
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=40000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="og-bench-partitions-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        generate_to_folders(root / "world", root / "labels", accounts=args.accounts, seed=args.seed)
        folders = partitions.split_by_shop(root / "world", root / "night", args.partitions)
        print(f"generated and split in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        per_partition = []
        for folder in folders:
            spawn = multiprocessing.get_context("spawn")  # a fresh process: its own peak RSS
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                per_partition.append(pool.submit(one_partition, str(folder),
                                                 str(root / "bench-out" / folder.name)).result())
            print(per_partition[-1], file=sys.stderr)

        with warehouse.connect(root / "load.duckdb") as con:  # the central load alone
            t0 = time.perf_counter()
            partitions.load_partitions(con, [root / "bench-out" / f.name for f in folders])
            central_load = round(time.perf_counter() - t0, 2)
        print(f"central load of {len(folders)} partitions: {central_load} s", file=sys.stderr)

        opts = ScanOptions(input_dir=root / "night", out_dir=root / "out", db_path=root / "wh.duckdb",
                           models_dir=root / "models", run_id="bench-central")
        t0 = time.perf_counter()
        run = run_scan(opts, call_stage=partitions.PartitionedStages(root / "work"))
        total = time.perf_counter() - t0

    orders = sum(p["orders"] for p in per_partition)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "accounts": args.accounts,
        "orders": orders,
        "partitions": per_partition,
        "partition_seconds_per_100k_orders": round(
            sum(p["seconds"] for p in per_partition) / orders * 100_000, 2),
        "central_load_seconds": central_load,
        "whole_scan": {
            "seconds": round(total, 1),
            "stage_seconds": run["stage_seconds"],
            "window_orders": run["window"]["window_orders"],
            "counts": run["counts"],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
