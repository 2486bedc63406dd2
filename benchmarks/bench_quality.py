"""Detection quality on generated presets: generate, scan (plain functions), evaluate.

    .venv/bin/python benchmarks/bench_quality.py [--presets hard default] [--accounts 30000]
        [--seeds 7 3 21] [--out benchmarks/results/quality.json]

Writes one JSON with every evaluate() figure per preset and seed (AP, precision at K,
account precision/recall, ring recall and purity, honest crowds, ablations), and prints a
short table. Seeds are fixed; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from orderguard.evaluate import evaluate_outputs
from orderguard.generate import generate_to_folders
from orderguard.scan import ScanOptions, run_scan


def run_one(preset: str, accounts: int, seed: int, work: Path) -> dict:
    root = work / f"{preset}-{seed}"
    started = time.perf_counter()
    generate_to_folders(root / "in", root / "labels", accounts=accounts, seed=seed, preset=preset)
    generated = time.perf_counter()
    run_scan(ScanOptions(input_dir=root / "in", out_dir=root / "out", db_path=root / "wh.duckdb",
                         models_dir=root / "models", run_id=f"bench-{preset}-{seed}"))
    scanned = time.perf_counter()
    result = evaluate_outputs(root / "out", root / "labels")
    result["seconds"] = {"generate": round(generated - started, 1), "scan": round(scanned - generated, 1)}
    return result


def headline(r: dict) -> str:
    o, a, g = r["order"], r["account"], r["rings"]
    crowds = max((v["in_ring_share"] for v in r["honest_crowds"].values()), default=0)
    called = max((v["flagged_order_buyer_share"] for v in r["honest_crowds"].values()), default=0)
    return (
        f"AP {o['average_precision']:.3f}  P@K {o['precision_at_k']:.3f}  "
        f"honest/10k {o['honest_flagged_per_10k']:>5.1f}  acct P {a['precision']:.3f} "
        f"R {a['recall']:.3f}  ring R {g['ring_recall']:.3f} (honest-looking "
        f"{g['ring_recall_looks_honest']}) purity {g['mean_ring_purity']:.3f}  "
        f"max crowd in ring {crowds:.4f}, with a flagged order {called:.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["hard", "default"])
    parser.add_argument("--accounts", type=int, default=30000)
    parser.add_argument("--seeds", nargs="+", type=int, default=[7])
    parser.add_argument("--out", default="benchmarks/results/quality.json")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            for seed in args.seeds:
                r = run_one(preset, args.accounts, seed, Path(tmp))
                results[f"{preset}/seed{seed}"] = r
                print(f"{preset:>8} seed {seed:>3}: {headline(r)}", flush=True)
                print("          ablations AP: " + ", ".join(
                    f"{k} {v['average_precision']:.3f}" for k, v in r["ablations"].items()), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"accounts": args.accounts, "results": results}, indent=2), "utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
