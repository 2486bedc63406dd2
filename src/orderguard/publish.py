"""marts -> published files, written so that support never sees a half-written night.

Layout of an output folder:
    nights/<run_date>/      one complete folder per night (written as .tmp-*, then renamed)
    latest -> nights/<run_date>   swapped with one atomic rename
    order_scores.parquet, flagged_orders.csv, ... -> latest/<file> (links, so the
        contract's file names always point into one complete night)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import polars as pl

from orderguard.rules import RuleSet

log = logging.getLogger(__name__)

CONTRACT_FILES = (
    "order_scores.parquet",
    "flagged_orders.csv",
    "flagged_accounts.csv",
    "rings.csv",
    "quarantine.csv",
    "report.html",
    "run.json",
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

ACTIONS = {  # what support should do, by ring kind or strongest reason
    "self_referral": "冻结佣金",
    "deep_chain": "冻结佣金",
    "brushing": "取消订单",
    "malicious": "取消订单",
    "fake_shipping": "人工核实",
}


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Text that a spreadsheet would run as a formula is prefixed with an apostrophe."""
    return frame.with_columns(
        pl.when(pl.col(c).str.starts_with(FORMULA_START[0]) | pl.col(c).str.contains(r"^[=+\-@\t\r]"))
        .then(pl.lit("'") + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c, dtype in frame.schema.items()
        if dtype == pl.String
    )


def mask_phone(expr: pl.Expr) -> pl.Expr:
    """138****5678: enough for support to match a caller, not enough to be a phone book."""
    digits = expr.str.replace_all(r"\D", "")
    return pl.when(digits.str.len_chars() >= 7).then(
        digits.str.slice(0, 3) + pl.lit("****") + digits.str.slice(-4)
    ).otherwise(pl.lit(None, pl.String))


def reasons_text(codes: pl.Expr, ruleset: RuleSet, lang: str) -> pl.Expr:
    mapping = {code: ruleset.text(code, lang) for code in ruleset.rules}
    return codes.list.eval(pl.element().replace(mapping)).list.join("；" if lang == "zh" else "; ")


def write_csv(frame: pl.DataFrame, path: Path, bom: bool = True) -> None:
    # UTF-8 with BOM so Excel on Chinese Windows opens it without mojibake
    neutralise_formulas(frame).write_csv(path, include_bom=bom)


def swap_in(out_dir: Path, staged: Path, run_date: str) -> Path:
    """Move a complete staged folder into nights/<run_date> and point `latest` at it."""
    nights = out_dir / "nights"
    nights.mkdir(parents=True, exist_ok=True)
    final = nights / run_date
    if final.exists():
        old = nights / f".old-{run_date}-{os.getpid()}"
        final.rename(old)
        staged.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(final)
    link_tmp = out_dir / f".latest-{os.getpid()}"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    link_tmp.symlink_to(Path("nights") / run_date)
    os.replace(link_tmp, out_dir / "latest")
    for name in CONTRACT_FILES:
        top = out_dir / name
        if top.is_symlink() and os.readlink(top) == str(Path("latest") / name):
            continue
        tmp = out_dir / f".{name}-{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(Path("latest") / name)
        os.replace(tmp, top)
    return final


def staging_folder(out_dir: Path, run_id: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".tmp-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    folder = out_dir / f".tmp-{run_id}"
    folder.mkdir()
    return folder


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True, default=str), "utf-8")
