"""report.html: one self-contained page for risk leads (charts embedded as PNG).

Every piece of input text is escaped: names and addresses never become live HTML.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from orderguard import warehouse  # noqa: E402
from orderguard.rules import RuleSet  # noqa: E402

log = logging.getLogger(__name__)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(frame: pl.DataFrame, max_rows: int = 50) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in frame.head(max_rows).iter_rows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def score_histogram(scores: pl.Series, flag: float) -> str:
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist(scores.to_numpy(), bins=50, color="#4a78b5", log=True)
    ax.axvline(flag, color="#c0392b", linestyle="--", label=f"flag threshold {flag}")
    ax.set_xlabel("score (higher = more suspicious)")
    ax.set_ylabel("orders (log)")
    ax.legend()
    return _png(fig)


def write_report(con, path: Path, run: dict, ruleset: RuleSet) -> None:
    summary = run["summary"]
    scores = warehouse.query(con, "select score, risk_level from marts.order_scores")
    rings = warehouse.query(
        con,
        "select ring_id, kind, size, order_count, gmv, commission_at_stake, evidence "
        "from marts.rings order by gmv desc, ring_id",
    )
    levels = scores.group_by("risk_level").len().sort("risk_level")
    hits = warehouse.query(
        con,
        "select code, count(*) as orders from (select unnest(reason_codes) as code "
        "from marts.order_scores where risk_level <> 'low') group by 1 order by 2 desc, 1",
    ).with_columns(pl.col("code").replace({c: ruleset.text(c, "en") for c in ruleset.rules}).alias("reason"))
    history = warehouse.query(
        con,
        "select run_date, orders_scored, orders_flagged, rings from ops.runs order by run_date",
    )
    flag = run["scoring"]["flag_threshold"]
    parts = [
        "<h1>orderguard nightly scan</h1>",
        f"<p>Night {html.escape(str(run['run_date']))} &middot; run {html.escape(run['run_id'])} "
        f"&middot; model: {html.escape(run['scoring']['model_action'])}</p>",
        "<h2>Tonight</h2>",
        _table(pl.DataFrame({
            "orders scanned": [summary["orders_scored"]],
            "orders flagged": [summary["orders_flagged"]],
            "accounts flagged": [summary["accounts_flagged"]],
            "rings": [summary["rings"]],
            "GMV in rings": [round(float(rings["gmv"].sum() or 0), 2)],
            "commission at stake": [round(float(rings["commission_at_stake"].sum() or 0), 2)],
            "rows quarantined": [summary["quarantined_rows"]],
        })),
        "<h3>Orders by risk level</h3>", _table(levels),
        "<h2>Score distribution</h2>",
        f'<img alt="score distribution" src="{score_histogram(scores["score"], flag)}">',
        "<h2>Rule hits among flagged orders</h2>", _table(hits),
        "<h2>Rings</h2>", _table(rings, 30),
        "<h2>Previous nights</h2>", _table(history, 60),
    ]
    style = (
        "body{font-family:'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "font-size:13px;text-align:left}th{background:#f0f3f7}"
    )
    page = (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<title>orderguard {html.escape(str(run['run_date']))}</title><style>{style}</style>"
        "</head><body>" + "\n".join(parts) + "</body></html>"
    )
    path.write_text(page, "utf-8")
