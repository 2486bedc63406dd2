"""What the scan's SQL would cost if no model wrote its table: a bound for any redesign.

    .venv/bin/python benchmarks/try_compute_only.py --db /tmp/og-scale/10000000-csv/wh.duckdb \\
        --orders /tmp/og-scale/10000000-csv/in/orders.csv \\
        [--rounds 2] [--out benchmarks/results/compute_only.json]

The scale issue's binding limit (a 10M first night in 5x the floor) was out of reach of
tuning; the redesign proposed for it is fewer, narrower per-order tables. Its best case is
no intermediate table written at all, every model streamed into the next. This measures
that best case on a scanned warehouse: each SQL model of the features stage and of
publishing (the marts) is run twice, alternating, into a scratch table the way the scan
writes it, and computed only (every column of every row hashed, nothing stored); reading
and hashing the written table is timed too and taken off the second, so what is left is
the model's computing alone. The floor into a file (bench_scale's) is measured in the same
run, before and after, so the bound can be set against 5x that floor. The scratch schema
is dropped at the end. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_scale import floor  # noqa: E402  the floor exactly as the scale bench measures it

from orderguard import config, features, health, scan, warehouse  # noqa: E402
from orderguard.graphs import GraphSettings  # noqa: E402
from orderguard.rules import load_rules  # noqa: E402

PUBLISH_MARTS = ("order_scores", "late_flags", "rings", "ring_totals", "flagged_accounts")


def timed(con, sql: str, params: dict) -> tuple[float, float]:
    started, cpu = time.perf_counter(), os.times()
    con.execute(sql, params).fetchall()
    done = os.times()
    return round(time.perf_counter() - started, 2), round(done.user - cpu.user + done.system - cpu.system, 1)


def models(con, run: dict) -> list[tuple[str, str, dict]]:
    """(layer, name, params) of every SQL model the features stage and publishing build."""
    feature = features.feature_params(con, GraphSettings())
    listed = [("intermediate", m, feature) for m in features.INTERMEDIATE_MODELS
              if m not in features.VIEW_MODELS]
    marts = scan.mart_params(run["run_id"], None, run, load_rules(None))
    listed += [("marts", m, marts) for m in PUBLISH_MARTS]
    listed += [("marts", m, health.health_params(con, marts)) for m in health.HEALTH_MODELS]
    return listed


def measure(con, layer: str, name: str, params: dict) -> dict:
    sql = warehouse.sql_text(layer, name)
    bound = warehouse.bind(sql, params)
    with warehouse.text_uncompressed(con):
        written, written_cpu = timed(con, f"create or replace table zz.{name} as\n{sql}", bound)
    hashed, hashed_cpu = timed(con, f"select count(*), bit_xor(hash(q)) from (\n{sql}\n) q", bound)
    reread, reread_cpu = timed(con, f"select count(*), bit_xor(hash(q)) from zz.{name} q", {})
    con.execute(f"drop table zz.{name}")
    return {"written_s": written, "written_cpu_s": written_cpu,
            "computed_s": round(max(hashed - reread, 0.0), 2),
            "computed_cpu_s": round(max(hashed_cpu - reread_cpu, 0.0), 1),
            "hash_and_scan_s": reread}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a scanned warehouse (the scale bench's)")
    parser.add_argument("--orders", required=True, help="the orders file that warehouse was scanned from")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/compute_only.json")
    args = parser.parse_args(argv)
    run = json.loads((Path(args.db).parent / "out" / "run.json").read_text("utf-8"))
    floors = [floor(Path(args.orders), str(Path(args.db).parent / "floor.duckdb"))["wall_s"]]
    con = warehouse.connect(args.db, memory_limit=config.DUCKDB_MEMORY_LIMIT)
    con.execute("create schema if not exists zz")
    # order_keys reads the window through this view (features.build_order_keys makes it)
    con.execute("create or replace temp view order_keys_input as select * from staging.orders")
    runs: dict[str, list] = {}
    for _ in range(args.rounds):
        for layer, name, params in models(con, run):
            # publishing holds DuckDB to less beside Python's frames, as the scan does
            limit = (config.DUCKDB_MEMORY_LIMIT if layer == "intermediate"
                     else config.DUCKDB_MEMORY_BESIDE_PYTHON)
            con.execute("set memory_limit = $limit", {"limit": limit})
            result = measure(con, layer, name, params)
            runs.setdefault(f"{layer}.{name}", []).append(result)
            print(f"{layer}.{name:24s} written {result['written_s']:6.1f} s  computed "
                  f"{result['computed_s']:6.1f} s", flush=True)
        con.execute("checkpoint")
    con.execute("drop schema zz cascade")
    con.execute("checkpoint")
    con.close()
    floors.append(floor(Path(args.orders), str(Path(args.db).parent / "floor.duckdb"))["wall_s"])
    best = {name: {key: min(r[key] for r in results) for key in ("written_s", "computed_s")}
            for name, results in runs.items()}
    stage = {layer: {key: round(sum(v[key] for k, v in best.items() if k.startswith(layer + ".")), 1)
                     for key in ("written_s", "computed_s")}
             for layer in ("intermediate", "marts")}
    summary = {"floor_into_file_s": floors, "stages_best_s": stage,
               "scan_stage_seconds": run["stage_seconds"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"db": args.db, "summary": summary, "best_s": best, "runs": runs},
                                         indent=2), "utf-8")
    print(json.dumps(summary, indent=2), f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
