"""report.html: one self-contained page for risk leads (charts embedded as PNG data URIs).

Every piece of input text is escaped: names, addresses and evidence never become live HTML,
and a Content-Security-Policy allows no script and no fetch at all. Sections: tonight's
summary, what changed since the last night, score distribution, rule hits and precision,
top rings with drawings, all rings, per-shop table, `extra_sections`, history.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import polars as pl

from orderguard import charts, feedback, graphs, ring_ids, warehouse
from orderguard.publish import ACCOUNTS_ZH, KIND_ZH, LEVEL_ZH, MEMBERS_ZH
from orderguard.rules import RuleSet

log = logging.getLogger(__name__)

TOP_RINGS = 6


def e(value) -> str:
    """Escape anything for HTML text or attribute context."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if hasattr(value, "as_tuple"):  # Decimal
        return f"{float(value):,.2f}"
    return str(value)


def _column_cells(column: pl.Series) -> list[str]:
    """A column's values as text; floats all with 2 decimals, or 4 if every one is below 1."""
    if not column.dtype.is_float():
        return [_fmt(v) for v in column]
    largest = column.abs().max()
    digits = 2 if largest is not None and largest >= 1 else 4
    return ["" if v is None else f"{v:,.{digits}f}" for v in column]


def table(frame: pl.DataFrame, headers: dict[str, str] | None = None, max_rows: int = 50,
          css: str = "") -> str:
    """An escaped HTML table; `headers` renames columns for display."""
    if frame.is_empty():
        return "<p class='muted'>（无 none）</p>"
    headers = headers or {}
    head = "".join(f"<th>{e(headers.get(c, c))}</th>" for c in frame.columns)
    shown = frame.head(max_rows)
    numeric = [frame.schema[c].is_numeric() for c in frame.columns]
    # one number of decimals per column: 0.6000 beside 2.70 read as 60 % against 2.7 %
    cells = [_column_cells(shown[c]) for c in frame.columns]
    body = "".join(
        "<tr>" + "".join(
            f"<td class='num'>{e(col[i])}</td>" if num else f"<td>{e(col[i])}</td>"
            for col, num in zip(cells, numeric, strict=True)
        ) + "</tr>"
        for i in range(shown.height)
    )
    more = (f"<p class='muted'>前 {max_rows} 行，共 {frame.height:,} 行 (first {max_rows} of "
            f"{frame.height:,} rows)</p>" if frame.height > max_rows else "")
    return (f"<div class='tbl'><table class='{e(css)}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>{more}")


def _table(frame: pl.DataFrame, max_rows: int = 50) -> str:
    """Kept for callers of the first report module (health.report_section)."""
    return table(frame, max_rows=max_rows)


def _png(fig) -> str:
    """Kept for callers of the first report module; new charts go through charts.style()."""
    return charts.png(fig)


def img(src: str, alt: str, css: str = "chart") -> str:
    return f"<img class='{e(css)}' alt='{e(alt)}' src='{e(src)}'>"


def section(title_zh: str, title_en: str, *body: str, anchor: str = "") -> str:
    ident = f" id='{e(anchor)}'" if anchor else ""
    return (f"<section{ident}><h2>{e(title_zh)} <small>{e(title_en)}</small></h2>"
            + "".join(body) + "</section>")


def kind_zh(kind: str | None) -> str:
    return "无团伙" if kind in (None, "none") else f"{KIND_ZH.get(kind, kind)}"


# ----------------------------------------------------------------------------- data


def _history(con, night: str) -> pl.DataFrame:
    """grain: one row per night in ops.runs up to `night`, with the summary figures of its
    run.json (a rescanned earlier night's report does not show the nights after it)."""
    if not warehouse.table_exists(con, "ops", "runs"):
        return pl.DataFrame()
    runs = warehouse.query(
        con,
        "select run_date, orders_scored, orders_flagged, accounts_flagged, rings, quarantined_rows, "
        "run_json from ops.runs where run_date <= $night order by run_date", {"night": night},
    )
    extra = []
    for text in runs["run_json"]:
        try:
            s = json.loads(text or "{}").get("summary", {})
        except json.JSONDecodeError:
            s = {}
        extra.append({
            "flagged_high": int(s.get("flagged_by_level", {}).get("high", 0)),
            "gmv_flagged": float(s.get("gmv_flagged", 0.0)),
            "commission_flagged": float(s.get("commission_flagged", 0.0)),
            "rings_new": s.get("rings_new"),
        })
    return runs.drop("run_json").hstack(
        pl.DataFrame(extra, schema={"flagged_high": pl.Int64, "gmv_flagged": pl.Float64,
                                    "commission_flagged": pl.Float64, "rings_new": pl.Int64})
    )


def _ring_table(con) -> pl.DataFrame:
    first = (
        "(select ring_id, min(run_date) as first_seen from ops.ring_history group by 1)"
        if warehouse.table_exists(con, "ops", "ring_history")
        else "(select null::varchar as ring_id, null::varchar as first_seen)"
    )
    return warehouse.query(
        con,
        "select r.ring_id, r.kind, r.size, r.order_count, r.gmv::double as gmv, "
        "r.commission_at_stake::double as commission_at_stake, f.first_seen, r.members, r.evidence, "
        "r.evidence_zh, "
        "r.shops from marts.rings r left join " + first + " f using (ring_id) "
        "order by r.gmv desc, r.ring_id",
    )


# The orders tonight's flagged_orders.csv lists, as the headline counts them: tonight's
# export's flagged orders and the earlier orders flagged late (the publish stage builds
# marts.late_flags before anything reads this)
LISTED_ORDERS = ("(select * from marts.order_scores where risk_level <> 'low' "
                 "union all by name select * from marts.late_flags)")


def _shops(con) -> pl.DataFrame:
    """grain: one row per shop with orders in tonight's export or on tonight's list."""
    return warehouse.query(
        con,
        """
        with commission as (
            select order_id, sum(amount) as commission from staging.commissions
            where status <> 'reversed' group by 1
        ),
        exported as (select shop_id, count(*) as orders from marts.order_scores group by 1),
        listed as (
            select s.shop_id,
                   count(*) as flagged,
                   count(*) filter (where s.risk_level = 'high') as high,
                   coalesce(sum(s.amount), 0)::double as flagged_gmv,
                   coalesce(sum(c.commission), 0)::double as flagged_commission,
                   count(distinct s.ring_id) as rings
            from """ + LISTED_ORDERS + """ s left join commission c using (order_id)
            group by 1
        )
        select shop_id, coalesce(e.orders, 0) as orders, coalesce(l.flagged, 0) as flagged,
               coalesce(l.high, 0) as high,
               round(100.0 * coalesce(l.flagged, 0) / nullif(e.orders, 0), 2) as flagged_pct,
               coalesce(l.flagged_gmv, 0) as flagged_gmv,
               coalesce(l.flagged_commission, 0) as flagged_commission,
               coalesce(l.rings, 0) as rings
        from exported e full join listed l using (shop_id)
        order by flagged desc, shop_id
        """,
    )


def _rule_hits(con, ruleset: RuleSet) -> pl.DataFrame:
    hits = warehouse.query(
        con,
        "select code, count(*) as flagged_orders from (select unnest(reason_codes) as code "
        f"from {LISTED_ORDERS}) group by 1 order by 2 desc, 1",
    )
    precision = feedback.rule_precision(con)
    return hits.join(precision, on="code", how="left").select(
        "code",
        pl.col("code").replace_strict({c: ruleset.text(c, "zh") for c in ruleset.rules},
                                      default=pl.col("code")).alias("reason"),
        "flagged_orders",
        pl.col("verdicts").fill_null(0),
        pl.col("precision"),
    )


def _ring_graph(con, ring: dict) -> nx.Graph:
    """graphs.ring_graph (accounts and the identifiers they share) plus invitations between
    members; a chain past the allowed depth also shows the uplines its members hang from."""
    members = [m for m in (ring["members"] or "").split(";") if m]
    invites = graphs.member_invites(con, members, uplines=ring["kind"] == "deep_chain")
    return graphs.ring_graph(members, graphs.member_identifiers(con, members), invites)


def _owner(con, ring_id: str) -> str | None:
    return warehouse.scalar(
        con, "select min(account_id) from intermediate.ring_members where ring_id = $r and role = 'owner'",
        {"r": ring_id},
    )


# ----------------------------------------------------------------------------- sections


def _summary_section(run: dict, history: pl.DataFrame) -> str:
    s = run["summary"]
    previous = history.filter(pl.col("run_date") < str(run["run_date"])).tail(1)
    prev = previous.row(0, named=True) if previous.height else {}

    def card(title: str, value, key: str | None = None, money: bool = False) -> str:
        shown = f"¥{value:,.2f}" if money else _fmt(value)
        delta = ""
        if key and key in prev and prev[key] is not None:
            d = value - prev[key]
            sign = "▲" if d > 0 else ("▼" if d < 0 else "＝")
            delta = f"<div class='delta'>较上一晚 {sign} {_fmt(abs(round(d, 2)) if money else abs(d))}</div>"
        return (f"<div class='card'><div class='label'>{e(title)}</div>"
                f"<div class='value'>{e(shown)}</div>{delta}</div>")

    level = s.get("flagged_by_level", {})
    cards = "".join([
        card("扫描订单 orders scanned", s["orders_scored"], "orders_scored"),
        card("标记订单 orders flagged", s["orders_flagged"], "orders_flagged"),
        card("高风险 high", int(level.get("high", 0)), "flagged_high"),
        card("中风险 medium", int(level.get("medium", 0))),
        card("其中往日订单 of them earlier nights' (flagged late)", int(s.get("orders_flagged_late", 0))),
        card("首次发送 sent for the first time tonight",
             int(s.get("orders_new_cases", s["orders_flagged"]))),
        card("已有核实结论 judged before (the order or its buyer)", int(s.get("orders_already_judged", 0))),
        card("往日待核实 earlier nights' cases still awaiting a verdict (template only)",
             int(s.get("orders_carried_forward", 0))),
        card("可疑账号 accounts flagged", s["accounts_flagged"], "accounts_flagged"),
        card("团伙 rings", s["rings"], "rings"),
        card("标记订单金额 GMV flagged", float(s.get("gmv_flagged", 0.0)), "gmv_flagged", money=True),
        card("标记订单佣金 commission flagged", float(s.get("commission_flagged", 0.0)), "commission_flagged",
             money=True),
        card("待追回佣金 commission to claw back", float(s.get("commission_to_claw_back", 0.0)), money=True),
        card("团伙订单金额 ring GMV", float(s.get("ring_gmv", 0.0)), money=True),
        card("团伙涉及佣金 ring commission", float(s.get("ring_commission", 0.0)), money=True),
        card("隔离行 rows quarantined", s["quarantined_rows"], "quarantined_rows"),
    ])
    actions = s.get("actions", {})
    action_line = "；".join(f"{e(k)} {v:,}" for k, v in actions.items())
    return section("今晚概况", "Tonight", f"<div class='cards'>{cards}</div>",
                   f"<p>建议处置 recommended actions: {action_line or '—'}</p>", anchor="tonight")


def _levels_section(con) -> str:
    frame = warehouse.query(
        con,
        "select coalesce(ring_kind, 'none') as kind, count(*) filter (where risk_level = 'high') as high, "
        "count(*) filter (where risk_level = 'medium') as medium, count(*) as flagged "
        f"from {LISTED_ORDERS} group by 1 order by flagged desc, kind",
    )
    if frame.is_empty():
        return section("按等级与类型", "Flagged by level and kind", "<p>今晚没有被标记的订单。</p>")
    names = [charts.label(kind_zh(k), k) for k in frame["kind"]]
    chart = charts.flagged_bars(names, frame["high"].to_list(), frame["medium"].to_list())
    shown = frame.with_columns(pl.col("kind").map_elements(kind_zh, return_dtype=pl.String).alias("类型"))
    return section(
        "按等级与类型", "Flagged orders by risk level and ring kind",
        img(chart, "flagged orders by kind and level"),
        table(shown.select("类型", "kind", "high", "medium", "flagged"),
              {"high": f"{LEVEL_ZH['high']}风险 high", "medium": f"{LEVEL_ZH['medium']}风险 medium",
               "flagged": "合计 flagged"}),
        anchor="levels",
    )


def _changes_section(con, run: dict) -> str:
    ch = ring_ids.changes(con, str(run["run_date"]))
    previous = ch["previous"]
    if previous is None:
        return section("与上一晚相比", "What changed since last night",
                       "<p>这是第一晚，没有可比较的上一晚。 (First night: nothing to compare.)</p>",
                       anchor="changes")
    history = _history(con, str(run["run_date"]))
    prev = history.filter(pl.col("run_date") == previous)
    now = history.filter(pl.col("run_date") == str(run["run_date"]))
    delta = ""
    if prev.height and now.height:
        d = now["orders_flagged"][0] - prev["orders_flagged"][0]
        delta = (f"<li>标记订单 {prev['orders_flagged'][0]:,} → {now['orders_flagged'][0]:,} "
                 f"（{'+' if d >= 0 else ''}{d:,}）</li>")
    new, returned, gone, kept = ch["new"], ch["returned"], ch["gone"], ch["carried"]
    grown = kept.filter(pl.col("size_change") != 0) if kept.height else kept
    merged = gone.filter(pl.col("now_in").is_not_null()).height if "now_in" in gone.columns else 0
    items = (
        f"<ul><li>上一晚 previous night: {e(previous)}</li>{delta}"
        f"<li>新出现团伙 new rings (first seen tonight): <b>{new.height}</b></li>"
        f"<li>重新出现团伙 rings back after nights away: <b>{returned.height}</b></li>"
        f"<li>消失团伙 rings gone: <b>{gone.height}</b>，其中并入今晚其他团伙 merged into a ring "
        f"tonight {merged}</li>"
        f"<li>延续团伙 rings carried over (same id): <b>{kept.height}</b>，"
        f"其中成员变化 {grown.height}</li></ul>"
    )
    cols = {"ring_id": "团伙 ring", "kind": "类型 kind", "size": "账号数 size", "order_count": "订单 orders",
            "gmv": "金额 GMV", "commission_at_stake": "佣金 commission", "first_seen": "首次发现 first seen",
            "size_before": "上一晚账号数", "size_change": "变化 change", "now_in": "并入 now in"}
    return section(
        "与上一晚相比", "What changed since last night", items,
        "<div id='new-rings'><h3>新出现团伙 New rings tonight</h3>",
        table(new.select([c for c in ("ring_id", "kind", "size", "order_count", "gmv", "commission_at_stake")
                          if c in new.columns]), cols),
        "</div><div id='returned-rings'><h3>重新出现团伙 Rings back after nights away</h3>",
        table(returned.select([c for c in ("ring_id", "kind", "size", "order_count", "gmv", "first_seen")
                               if c in returned.columns]), cols),
        "</div><div id='gone-rings'><h3>已消失团伙 Rings gone since last night</h3>",
        table(gone.select([c for c in ("ring_id", "kind", "size", "order_count", "gmv", "now_in")
                           if c in gone.columns]), cols),
        "</div><div id='changed-rings'>"
        "<h3>成员有变化的延续团伙 Carried-over rings whose membership changed</h3>",
        table(grown.select([c for c in ("ring_id", "kind", "size_before", "size", "size_change", "first_seen")
                            if c in grown.columns]), cols),
        "</div>",
        anchor="changes",
    )


def _rings_section(con, rings: pl.DataFrame) -> str:
    if rings.is_empty():
        return section("重点团伙", "Top rings", "<p>今晚没有发现团伙。 (No rings tonight.)</p>")
    blocks = []
    for ring in rings.head(TOP_RINGS).iter_rows(named=True):
        members = MEMBERS_ZH.get(ring["kind"], ACCOUNTS_ZH)
        facts = (f"{kind_zh(ring['kind'])} · {ring['size']} {members} · {ring['order_count']:,} 单 · "
                 f"金额 ¥{ring['gmv']:,.2f} · 佣金 ¥{ring['commission_at_stake']:,.2f} · "
                 f"首次发现 {ring['first_seen'] or '今晚'}")
        if ring["kind"] == "fake_shipping":
            drawing = (f"<p class='muted'>店铺层面的团伙（{e(ring['shops'])}），成员是店铺而非账号，"
                       "不画关系图。 (Shop-level ring: no account drawing.)</p>")
        else:
            graph = _ring_graph(con, ring)
            owner = _owner(con, ring["ring_id"])
            title = charts.label(f"{kind_zh(ring['kind'])}团伙 {ring['ring_id']}",
                                 f"{ring['kind']} ring {ring['ring_id']}")
            drawing = img(charts.ring_drawing(graph, title, owner), f"ring {ring['ring_id']}",
                          css="ring-drawing")
        members = (ring["members"] or "").split(";")
        shown = "；".join(members[:30]) + (f" … 共 {len(members)} 个" if len(members) > 30 else "")
        blocks.append(
            f"<div class='ring' id='ring-{e(ring['ring_id'])}'><h3>{e(ring['ring_id'])}</h3>"
            f"<p><b>{e(facts)}</b></p>{drawing}"
            f"<p><b>证据:</b> {e(ring['evidence_zh'])}</p>"
            f"<p class='muted'><b>evidence:</b> {e(ring['evidence'])}</p>"
            f"<p class='muted'><b>成员 members:</b> {e(shown)}</p></div>"
        )
    legend = ("<p class='muted'>图例：圆点为账号（红色为分销员/团伙主），方块为共用的设备、支付账号、手机、"
              "IP、地址（只标类型与编号，不显示原值）；红色虚线为邀请关系；"
              "大圆点“N 个账号”是共用完全相同标识的多个账号。"
              " (Circles: accounts, the owner red; squares: shared identifiers by type and number, never "
              "their values; dashed red: invitations; a large circle 'N accounts' is N accounts sharing "
              "exactly the same identifiers.)</p>")
    return section("重点团伙", f"Top {min(TOP_RINGS, rings.height)} rings by GMV", legend, *blocks,
                   anchor="rings")


def _all_rings_section(rings: pl.DataFrame) -> str:
    shown = rings.select(
        "ring_id", pl.col("kind").map_elements(kind_zh, return_dtype=pl.String).alias("类型"), "size",
        "order_count", "gmv", "commission_at_stake", "first_seen", "evidence_zh",
    )
    return section("全部团伙", "All rings", table(
        shown, {"ring_id": "团伙 ring", "size": "账号数", "order_count": "订单", "gmv": "金额 GMV",
                "commission_at_stake": "佣金 commission", "first_seen": "首次发现",
                "evidence_zh": "证据 evidence"},
        max_rows=100), anchor="all-rings")


def _history_section(history: pl.DataFrame) -> str:
    if history.is_empty():
        return section("历史", "History", "<p>没有历史记录。</p>", anchor="history")
    chart = charts.trend_chart(
        history["run_date"].to_list(), history["orders_flagged"].to_list(),
        history["flagged_high"].to_list(), history["rings"].to_list(),
    )
    return section(
        "历史趋势", f"History: {history.height} 晚 night(s)", img(chart, "trend of flagged orders and rings"),
        table(history.sort("run_date", descending=True), {
            "run_date": "日期 night", "orders_scored": "扫描订单", "orders_flagged": "标记订单",
            "accounts_flagged": "可疑账号", "rings": "团伙", "quarantined_rows": "隔离行",
            "flagged_high": "高风险", "gmv_flagged": "标记金额", "commission_flagged": "标记佣金",
            "rings_new": "新团伙",
        }, max_rows=90, css="history"),
        anchor="history",
    )


STYLE = (
    "body{font-family:'Noto Sans CJK SC','Noto Sans SC','Source Han Sans SC','Microsoft YaHei',"
    "'PingFang SC',sans-serif;margin:1.5em 2em;color:#222;max-width:1200px}"
    "h1{font-size:24px}h2{border-bottom:2px solid #4a78b5;padding-bottom:4px;margin-top:1.6em}"
    "h2 small{color:#888;font-weight:normal;font-size:14px}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "font-size:13px;text-align:left;vertical-align:top;max-width:32em;overflow-wrap:anywhere}th{background:#f0f3f7}td.num{text-align:right;white-space:nowrap}"
    ".cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #dde3ea;border-radius:6px;"
    "padding:8px 12px;min-width:150px;background:#fafbfc}.card .label{font-size:12px;color:#666}"
    ".card .value{font-size:22px;font-weight:bold}.delta{font-size:12px;color:#888}"
    ".muted{color:#777;font-size:12px}.ring{border-top:1px solid #eee;padding-top:6px}"
    "img.chart,img.ring-drawing{max-width:100%;display:block;margin:6px 0}"
    "nav a{margin-right:12px}.tbl{overflow-x:auto;max-width:100%}"
)
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def write_report(con, path: Path, run: dict, ruleset: RuleSet, extra_sections: Sequence[str] = ()) -> None:
    """Write report.html. `extra_sections` are HTML fragments (already escaped by whoever
    builds them) placed after the per-shop table, before the history."""
    flag = float(run["scoring"]["flag_threshold"])
    high = float(run["scoring"].get("high_threshold", ruleset.scoring.get("high_threshold", 0.8)))
    scores = warehouse.query(con, "select score from marts.order_scores")["score"].to_numpy()
    rings = _ring_table(con)
    history = _history(con, str(run["run_date"]))
    hits = _rule_hits(con, ruleset)
    parts = [
        f"<h1>orderguard 夜间风控扫描 · {e(run['run_date'])}</h1>",
        f"<p class='muted'>run {e(run['run_id'])} · "
        f"模型 model: {e(run['scoring'].get('model_action', ''))} · "
        f"阈值 thresholds: {e(run['scoring'].get('threshold_source', ''))} (flag {flag}, high {high})</p>",
        "<nav><a href='#tonight'>今晚</a><a href='#changes'>变化</a><a href='#scores'>评分</a>"
        "<a href='#rules'>规则</a><a href='#rings'>团伙</a><a href='#shops'>店铺</a>"
        "<a href='#history'>历史</a></nav>",
        _summary_section(run, history),
        _levels_section(con),
        _changes_section(con, run),
        section("评分分布", "Score distribution",
                img(charts.score_histogram(scores, flag, high), "score distribution"), anchor="scores"),
        section("规则命中与准确率", "Rule hits among flagged orders, precision where verdicts exist",
                table(hits, {"code": "代码 code", "reason": "原因 reason",
                             "flagged_orders": "今晚名单命中 on tonight's list",
                             "verdicts": "已核实 verdicts",
                             "precision": "准确率 precision"}),
                "<p class='muted'>命中数为今晚名单上的订单；核实数与准确率来自客服回填的核实结果"
                "（orderguard feedback），按订单首次发送给客服时的原因统计，涵盖以往各晚发送的订单，"
                "可能多于今晚的命中；没有核实结果的规则留空。 Hits count tonight's list (tonight's "
                "flagged orders and earlier ones flagged late: ops.rule_hits.listed; its hits and "
                "flagged count tonight's export only); verdicts "
                "and precision count the orders support was sent with that reason on any night "
                "(by the reasons of their first listing) and has judged, so they can exceed "
                "tonight's hits.</p>",
                anchor="rules"),
        _rings_section(con, rings),
        _all_rings_section(rings),
        section("各店铺", "Per shop", table(_shops(con), {
            "shop_id": "店铺 shop", "orders": "订单", "flagged": "标记", "high": "高风险",
            "flagged_pct": "标记占比 %", "flagged_gmv": "标记金额", "flagged_commission": "标记佣金",
            "rings": "团伙"}, max_rows=100), anchor="shops"),
        *extra_sections,
        _history_section(history),
    ]
    page = (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        f"<title>orderguard {e(run['run_date'])}</title><style>{STYLE}</style>"
        "</head><body>" + "\n".join(parts) + "</body></html>"
    )
    path.write_text(page, "utf-8")
    # named, not located: the folder it is written in is renamed to nights/<date> on publishing
    log.info("report.html written (%d KB)", len(page) // 1024)
