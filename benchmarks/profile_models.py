"""Where a feature model's time goes: rebuild intermediate models on an existing warehouse
under DuckDB's JSON profiler and print each one's wall time, bytes read and written and its
costliest operators.

    .venv/bin/python benchmarks/profile_models.py --db /tmp/og-scale/10000000-csv/wh.duckdb \\
        [--models order_keys account_pairs ...] [--top 6]

The warehouse is one a scan built (the bench's, say); the models are rebuilt in place as the
features stage builds them (nightly tables' text uncompressed, views stay views, order_keys
whole), so the next scan is unaffected. Timings on this VM move by a third with idle time:
compare two versions of a model by running them back to back, in alternating order.
Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from orderguard import features, warehouse
from orderguard.graphs import GraphSettings


def operators(node: dict, depth: int = 0) -> list[tuple[float, int, dict]]:
    found = [(float(node.get("timing", 0.0)), depth, node)]
    for child in node.get("children", []):
        found += operators(child, depth + 1)
    return found


def describe(node: dict) -> str:
    extra = node.get("extra_info") or {}
    shown = {k: extra[k] for k in ("Table", "Join Type", "Conditions", "Groups", "Aggregates")
             if k in extra}
    shown_text = json.dumps(shown, ensure_ascii=False)[:140]
    return f"{node.get('name')} rows={node.get('intermediate_rows')} {shown_text}"


def profile(con, name: str, params: dict, top: int, folder: Path) -> dict:
    if name in features.VIEW_MODELS:  # a view costs nothing until its reader runs
        warehouse.build_model(con, "intermediate", name, as_view=True, count_rows=False)
        return {"model": name, "view": True}
    sql = warehouse.sql_text("intermediate", name)
    if name == "order_keys":
        con.execute("create or replace temp view order_keys_input as select * from staging.orders")
    output = folder / f"{name}.json"
    con.execute("set enable_profiling = 'json'")
    con.execute(f"set profiling_output = '{output}'")
    started = time.perf_counter()
    with warehouse.text_uncompressed(con):
        con.execute(f"create or replace table intermediate.{warehouse.ident(name)} as\n{sql}",
                    warehouse.bind(sql, params))
    wall = time.perf_counter() - started
    con.execute("pragma disable_profiling")
    tree = json.loads(output.read_text())
    found = sorted((op for root in tree["operator"] for op in operators(root)), key=lambda x: -x[0])
    io = tree.get("io", {})
    return {
        "model": name, "wall_s": round(wall, 1),
        "read_gb": round(io.get("total_bytes_read", 0) / 1e9, 2),
        "written_gb": round(io.get("total_bytes_written", 0) / 1e9, 2),
        "operators": [f"{t:7.2f} s  {describe(node)}" for t, _, node in found[:top]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--models", nargs="+", default=list(features.INTERMEDIATE_MODELS))
    parser.add_argument("--top", type=int, default=6)
    args = parser.parse_args(argv)
    con = warehouse.connect(args.db)
    params = features.feature_params(con, GraphSettings())
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            result = profile(con, name, params, args.top, Path(folder))
            if result.get("view"):
                print(f"== {name}: view (its cost shows in its reader)")
                continue
            print(f"== {name}: {result['wall_s']} s, read {result['read_gb']} GB, "
                  f"wrote {result['written_gb']} GB")
            for line in result["operators"]:
                print("   ", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
