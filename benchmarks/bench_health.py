"""Distributor scorecards against the truth: do self-referral ring owners grade worst?

    .venv/bin/python benchmarks/bench_health.py [--accounts 20000] [--seeds 7 11]
        [--preset default] [--out benchmarks/results/health.json]

For each seed: generate a world, run the nightly scan (plain functions), read
marts.distributor_scorecard, and take the self-referral ring owners from the labels
(labels/accounts.csv, role = owner, kind = self_referral). Prints the rank of every owner
among all distributors (1 = riskiest: grade, then risk points, then commission at stake)
and checks that each owner grades worse than every honest distributor in the same size
band of direct downline (1-5, 6-20, 21+). Writes the figures as JSON. Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from orderguard import warehouse
from orderguard.generate import generate_to_folders
from orderguard.scan import ScanOptions, run_scan

BANDS = ((1, 5, "1-5"), (6, 20, "6-20"), (21, None, "21+"))
GRADE_ORDER = {g: i for i, g in enumerate("ABCDE")}


def band_of(direct: pl.Expr) -> pl.Expr:
    expr = pl.lit(None, pl.String)
    for lo, hi, name in reversed(BANDS):
        cond = direct >= lo if hi is None else direct.is_between(lo, hi)
        expr = pl.when(cond).then(pl.lit(name)).otherwise(expr)
    return expr


def ranked_scorecards(db: Path, labels: Path) -> pl.DataFrame:
    """grain: one row per distributor, with its rank (1 = riskiest), band and truth."""
    with warehouse.connect(db, read_only=True) as con:
        cards = warehouse.query(
            con,
            "select distributor_id, grade, risk_points::double as risk_points, direct_downline, "
            "commission_at_stake::double as commission_at_stake, reason_codes "
            "from marts.distributor_scorecard",
        )
    truth = pl.read_csv(labels / "accounts.csv", infer_schema=False).select(
        pl.col("account_id").alias("distributor_id"), pl.col("is_fraud").cast(pl.Int8), "kind", "role"
    )
    return (
        cards.join(truth, on="distributor_id", how="left")
        .with_columns(
            pl.col("grade").replace_strict(GRADE_ORDER, return_dtype=pl.Int8).alias("grade_rank"),
            band_of(pl.col("direct_downline")).alias("band"),
            ((pl.col("role") == "owner") & (pl.col("kind") == "self_referral")).fill_null(False)
            .alias("is_owner"),
        )
        .sort(["grade_rank", "risk_points", "commission_at_stake", "distributor_id"],
              descending=[True, True, True, False])
        .with_row_index("rank", offset=1)
    )


def owner_report(cards: pl.DataFrame) -> dict:
    honest = cards.filter(pl.col("is_fraud") == 0)
    owners = []
    for row in cards.filter(pl.col("is_owner")).iter_rows(named=True):
        peers = honest.filter(pl.col("band") == row["band"])
        worst_peer = peers.sort(["grade_rank", "risk_points"], descending=True).head(1)
        worse_than_all = peers.is_empty() or row["grade_rank"] > int(peers["grade_rank"].max())
        owners.append({
            "owner": row["distributor_id"], "rank": int(row["rank"]), "grade": row["grade"],
            "risk_points": round(row["risk_points"], 2), "direct_downline": int(row["direct_downline"]),
            "band": row["band"], "honest_in_band": peers.height,
            "worst_honest_in_band": (
                f"{worst_peer['distributor_id'][0]} grade {worst_peer['grade'][0]}"
                if worst_peer.height else None
            ),
            "grades_worse_than_every_honest_in_band": bool(worse_than_all),
            "reasons": row["reason_codes"],
        })
    grades = dict(
        cards.group_by(pl.when(pl.col("is_fraud") == 0).then(pl.lit("honest")).otherwise(pl.lit("fraud"))
                       .alias("who"), "grade").len().sort(["who", "grade"])
        .select(pl.concat_str(["who", "grade"], separator=" "), "len").iter_rows()
    )
    return {
        "distributors": cards.height,
        "honest_distributors": honest.height,
        "best_honest_rank": int(honest["rank"].min()) if honest.height else None,
        "worst_owner_rank": max((o["rank"] for o in owners), default=None),
        "owners": owners,
        "owners_found": len(owners),
        "all_owners_worse_than_honest_band": all(o["grades_worse_than_every_honest_in_band"] for o in owners),
        "grades": grades,
    }


def run_one(accounts: int, seed: int, preset: str, work: Path) -> dict:
    root = work / f"{preset}-{seed}"
    started = time.perf_counter()
    generate_to_folders(root / "in", root / "labels", accounts=accounts, seed=seed, preset=preset)
    generated = time.perf_counter()
    run_scan(ScanOptions(input_dir=root / "in", out_dir=root / "out", db_path=root / "wh.duckdb",
                         models_dir=root / "models", run_id=f"bench-health-{seed}"))
    scanned = time.perf_counter()
    result = owner_report(ranked_scorecards(root / "wh.duckdb", root / "labels"))
    result["seconds"] = {"generate": round(generated - started, 1), "scan": round(scanned - generated, 1)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20000)
    parser.add_argument("--seeds", nargs="+", type=int, default=[7, 11])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--out", default="benchmarks/results/health.json")
    args = parser.parse_args(argv)
    results, ok = {}, True
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            r = run_one(args.accounts, seed, args.preset, Path(tmp))
            results[f"{args.preset}/seed{seed}"] = r
            ok &= r["all_owners_worse_than_honest_band"]
            print(f"seed {seed}: {r['distributors']} distributors ({r['honest_distributors']} honest), "
                  f"{r['owners_found']} self-referral ring owners; grades {r['grades']}", flush=True)
            print(f"  worst-ranked owner at {r['worst_owner_rank']}, best-ranked honest distributor at "
                  f"{r['best_honest_rank']}", flush=True)
            for o in sorted(r["owners"], key=lambda o: o["rank"]):
                mark = "ok" if o["grades_worse_than_every_honest_in_band"] else "NOT worse"
                print(f"  owner {o['owner']}: rank {o['rank']:>4} of {r['distributors']}  grade {o['grade']} "
                      f"({o['risk_points']} pts)  band {o['band']:>4} vs {o['honest_in_band']:>4} honest, "
                      f"worst {o['worst_honest_in_band']}: {mark}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"accounts": args.accounts, "results": results}, indent=2), "utf-8")
    print(f"every owner grades worse than every honest distributor in its band: {ok}")
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
