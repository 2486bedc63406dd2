"""Distribution health: distributor scorecards, programme health and cohort trust.

Built at publish time, after the scan's own marts, from staging, intermediate and the
scores (sql/marts, one SELECT per file):

    programme_rates       (shop_id, level)            the rates programme.toml promises
    commission_ledger     (order_id, level)           commission per order and level: the
                                                      commissions file, or the configured
                                                      rates along the inviter chain
    distributor_downline  (distributor_id, account_id) every account below a distributor
    distributor_recruiting (distributor_id)           invitees, bursts, downline, linked circle
    distributor_sales     (distributor_id)            referred orders, refund/cancel rates,
                                                      commission by status, at stake
    distributor_activity  (distributor_id)            both, plus tree position and rings
    distributor_scorecard (distributor_id)            + concerns, risk points, grade A..E
    commission_by_level   (shop_id, level, status)    paid against configured, 'ALL' = sum
    programme_depth       (shop_id, referral_depth)   accounts per depth, beyond allowed
    programme_health      (shop_id)                   per shop and 'ALL'
    customer_cohorts      (buyer_id)                  first order, channel, next order
    cohort_retention      (cohort_month, channel)     30/60/90-day repeat, refunds, flagged
    cohort_curves         (cohort_month, channel, day) repeat-purchase curves

`report_section` renders them as an HTML fragment for report.html.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import matplotlib
import polars as pl
from matplotlib.figure import Figure
from matplotlib.text import Text

from orderguard import charts, config, report, warehouse

log = logging.getLogger(__name__)

# Build order matters: each model reads the ones above it.
HEALTH_MODELS = (
    "programme_rates",
    "commission_ledger",
    "distributor_downline",
    "distributor_recruiting",
    "distributor_sales",
    "distributor_activity",
    "distributor_scorecard",
    "commission_by_level",
    "programme_depth",
    "programme_health",
    "customer_cohorts",
    "cohort_retention",
    "cohort_curves",
)
GRADES = ("A", "B", "C", "D", "E")
SOURCE_FILE = "commissions file"
SOURCE_RATES = "configured rates"


class ProgrammeConfigError(ValueError):
    """A programme file that cannot be used: names the file, the table and the key."""


# the scorecard's thresholds when programme.toml leaves them out (programme.toml's values);
# integers stay integers (minutes, counts, days)
SCORECARD_DEFAULTS: dict[str, float | int] = {
    "arbitrage_hours": 72.0,
    "burst_minutes": 60,
    "burst_invitees": 3,
    "min_invitees": 3,
    "never_buy_share": 0.2,
    "never_buy_min_days": 7,
    "rate_lift": 2.0,
    "min_events": 3,
    "downline_flagged_share": 0.3,
    "at_stake_share": 0.5,
    "link_weight": 0.3,
}
DEFAULT_GRADE_POINTS = [0.0, 1.0, 2.0, 3.5]
SHOP_KEYS = {"rates", "allowed_levels"}


@dataclass
class ShopProgramme:
    rates: list[float]
    allowed_levels: int


@dataclass
class Programme:
    """programme.toml: commission rates per level (default and per shop) and the
    scorecard's thresholds."""

    default: ShopProgramme
    shops: dict[str, ShopProgramme] = field(default_factory=dict)
    scorecard: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def _check_keys(where: str, spec: Any, allowed: set[str]) -> None:
    if problem := config.toml_key_problem(where, spec, allowed):
        raise ProgrammeConfigError(problem)


def _shop_programme(spec: Any, where: str, default: ShopProgramme | None = None) -> ShopProgramme:
    _check_keys(where, spec, SHOP_KEYS)
    rates = spec.get("rates", default.rates if default else None)
    if (not isinstance(rates, list) or not rates
            or not all(config.is_toml_number(r) and 0 <= r < 1 for r in rates)):
        raise ProgrammeConfigError(
            f"{where}: rates must be a list of shares between 0 and 1 (0.10 for 10 %), got {rates!r}")
    if sum(rates) >= 1:
        raise ProgrammeConfigError(f"{where}: rates {rates!r} pay {sum(rates):.0%} of the order "
                                   "in commission, all of it or more")
    allowed = spec.get("allowed_levels", len(rates))
    if isinstance(allowed, bool) or not isinstance(allowed, int) or allowed < 1:
        raise ProgrammeConfigError(f"{where}: allowed_levels must be a whole number of levels, "
                                   f"at least 1, got {allowed!r}")
    return ShopProgramme([float(r) for r in rates], allowed)


def _scorecard(spec: Any, where: str) -> dict[str, Any]:
    _check_keys(where, spec, {*SCORECARD_DEFAULTS, "grade_points"})
    card: dict[str, Any] = {}
    for key, default in SCORECARD_DEFAULTS.items():
        value = spec.get(key, default)
        if not config.is_toml_number(value) or value < 0:
            raise ProgrammeConfigError(f"{where}: {key} must be a number, at least 0, got {value!r}")
        if isinstance(default, int) and value != int(value):
            raise ProgrammeConfigError(f"{where}: {key} must be a whole number, got {value!r}")
        card[key] = type(default)(value)
    points = spec.get("grade_points", DEFAULT_GRADE_POINTS)
    if (not isinstance(points, list) or len(points) != 4 or not all(config.is_toml_number(x) for x in points)
            or points != sorted(points)):
        raise ProgrammeConfigError(f"{where}: grade_points must be 4 rising numbers, got {points!r}")
    card["grade_points"] = [float(x) for x in points]
    return card


def load_programme(path: str | Path | None = None) -> Programme:
    """Read and check programme.toml (the packaged one unless `path` names another). Every
    mistake (a file that cannot be read, bad TOML, an unknown or misspelt key, a rate that is
    not a share, a threshold that is not a number) is a ProgrammeConfigError naming the file,
    the table and the key, raised before a scan does any work."""
    data, source = config.read_settings_toml(path, "programme.toml", "orderguard/programme.toml",
                                             "programme file", ProgrammeConfigError)
    _check_keys(source, data, {"default", "shops", "scorecard"})
    default = _shop_programme(data.get("default", {}), f"{source} [default]")
    shops = data.get("shops", {})
    if not isinstance(shops, dict):
        raise ProgrammeConfigError(f"{source} [shops]: expected a table of shops, not {shops!r}")
    return Programme(
        default,
        {str(shop): _shop_programme(spec, f"{source} [shops.{shop}]", default)
         for shop, spec in shops.items()},
        _scorecard(data.get("scorecard", {}), f"{source} [scorecard]"),
        source,
    )


def programme_params(programme: Programme) -> dict[str, Any]:
    """The programme as SQL parameters: rates as parallel lists (shop '*' = default), and the
    scorecard's thresholds by name."""
    shop_ids, levels, values, allowed = [], [], [], []
    for shop, prog in [("*", programme.default), *programme.shops.items()]:
        for level, rate in enumerate(prog.rates, start=1):
            shop_ids.append(shop)
            levels.append(level)
            values.append(rate)
            allowed.append(prog.allowed_levels)
    return {
        "rate_shop_ids": shop_ids,
        "rate_levels": levels,
        "rate_values": values,
        "rate_allowed_levels": allowed,
        "max_rate_levels": max(levels),
        **programme.scorecard,
    }


def commissions_given(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the input had a commissions file (raw.commissions has rows)."""
    if not warehouse.table_exists(con, "raw", "commissions"):
        return False
    return bool(warehouse.scalar(con, "select count(*) > 0 from raw.commissions"))


def health_params(con: duckdb.DuckDBPyConnection, params: dict[str, Any],
                  programme: Programme | None = None) -> dict[str, Any]:
    """The health marts' SQL parameters: the programme's (`programme`, else programme_path's,
    else the package's), whether commissions came as a file, then `params`, which override."""
    programme = programme or load_programme(params.get("programme_path"))
    return {**programme_params(programme), "commissions_given": commissions_given(con), **params}


def build_health_marts(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict:
    """Materialise the distribution-health marts. `params` needs run_id; it may carry
    programme_path (another programme.toml) and any programme parameter to override."""
    programme = load_programme(params.get("programme_path"))
    sql_params = health_params(con, params, programme)
    given = sql_params["commissions_given"]
    counts = {name: warehouse.build_model(con, "marts", name, sql_params) for name in HEALTH_MODELS}
    grades = dict(
        warehouse.query(
            con, "select grade, count(*) as n from marts.distributor_scorecard group by 1 order by 1"
        ).iter_rows()
    )
    source = SOURCE_FILE if given else SOURCE_RATES
    log.info("distribution health: %d distributors graded %s; commission from %s",
             counts["distributor_scorecard"], grades, source)
    return {"rows": counts, "grades": grades, "commission_source": source,
            "programme": programme.source}


# ----------------------------------------------------------------------------- reading


def riskiest_distributors(con: duckdb.DuckDBPyConnection, limit: int = 20) -> pl.DataFrame:
    """grain: one row per distributor, worst first (grade, then risk points, then money)."""
    return warehouse.query(
        con,
        """
        select distributor_id, grade, round(risk_points, 1) as risk_points, direct_downline,
               total_downline, levels_below, referred_orders, round(referred_gmv, 2) as referred_gmv,
               round(refund_rate, 3) as refund_rate, round(shop_refund_rate, 3) as shop_refund_rate,
               round(downline_suspect_share, 3) as downline_flagged_share,
               commission_earned, commission_pending, commission_at_stake,
               round(commission_margin_share, 3) as commission_margin_share,
               array_to_string(reasons, '; ') as reasons
        from marts.distributor_scorecard
        order by grade desc, risk_points desc, commission_at_stake desc, distributor_id
        limit $limit
        """,
        {"limit": limit},
    )


def _pin_fonts(fig: Figure) -> Figure:
    """Give every text of the figure the report's font by name, so it renders the same
    wherever it is drawn later (a notebook draws outside charts.style())."""
    font = charts.cjk_font()
    if font:
        for text in fig.findobj(Text):
            text.set_fontfamily([font, "DejaVu Sans"])
    return fig


def depth_figure(depth: pl.DataFrame, title: str | None = None) -> Figure:
    """Bar chart of accounts per referral depth (1 = direct invitee of a root distributor);
    depths beyond the allowed levels in red. `depth` is marts.programme_depth for one shop.
    The figure is not registered with pyplot (a notebook shows it once)."""
    frame = depth.filter(pl.col("referral_depth") >= 1).sort("referral_depth")
    with charts.style():
        fig = Figure(figsize=(7, 3))
        ax = fig.subplots()
        _draw_depth(ax, frame, title)
    return _pin_fonts(fig)


def _draw_depth(ax, frame: pl.DataFrame, title: str | None) -> None:
    colours = [charts.RED if b else charts.BLUE for b in frame["beyond_allowed"].to_list()]
    ax.bar(frame["referral_depth"].to_list(), frame["accounts"].to_list(), color=colours)
    if frame.height:
        allowed = int(frame["allowed_levels"][0])
        ax.axvline(allowed + 0.5, color=charts.RED, linestyle="--",
                   label=charts.label(f"规则允许 {allowed} 级", f"programme allows {allowed} levels"))
        ax.legend(frameon=False)
    ax.set_yscale("log")
    ax.set_xlabel(charts.label("距根分销员的层级（1 = 直接邀请）",
                               "depth below the root distributor (1 = direct invitee)"))
    ax.set_ylabel(charts.label("账号数（对数）", "accounts (log)"))
    ax.set_title(title or charts.label("分销关系树深度（全部店铺）", "referral tree depth (all shops)"))


def cohort_figure(curves: pl.DataFrame, min_observable: int = 20) -> Figure:
    """Repeat-purchase curves per cohort month: referral (dashed) against organic (solid).
    `curves` is marts.cohort_curves; a day is drawn while at least `min_observable`
    customers of the cohort can be observed that long. The figure is not registered with
    pyplot (a notebook shows it once)."""
    curves = curves.filter(pl.col("observable") >= min_observable)
    with charts.style():
        fig = Figure(figsize=(7, 3.5))
        ax = fig.subplots()
        _draw_cohorts(ax, curves)
    return _pin_fonts(fig)


def _draw_cohorts(ax, curves: pl.DataFrame) -> None:
    months = sorted(set(curves["cohort_month"].to_list()))
    cmap = matplotlib.colormaps["viridis"].resampled(max(len(months), 2))
    words = {"organic": charts.label("自然", "organic"), "referral": charts.label("分销引入", "referral")}
    for i, month in enumerate(months):
        for channel, style in (("organic", "-"), ("referral", "--")):
            part = curves.filter((pl.col("cohort_month") == month) & (pl.col("channel") == channel))
            if part.height:
                part = part.sort("day")
                ax.plot(part["day"].to_list(), part["repeat_rate"].to_list(), style,
                        color=cmap(i), label=f"{month} {words[channel]}")
    ax.set_xlabel(charts.label("首单后天数", "days since first paid order"))
    ax.set_ylabel(charts.label("复购占比", "share who bought again"))
    ax.set_ylim(0, 1)
    if months:
        ax.legend(frameon=False, fontsize=8, ncol=2)
    ax.set_title(charts.label("各月新客复购曲线：分销引入（虚线）与自然（实线）",
                              "repeat purchase by cohort: referral (dashed) vs organic (solid)"))


def _rates_text(con: duckdb.DuckDBPyConnection) -> str:
    rates = warehouse.query(
        con, "select level, configured_rate from marts.programme_rates where shop_id = 'ALL' order by level"
    )
    return " / ".join(f"L{lvl} {rate:.0%}" for lvl, rate in rates.iter_rows())


def _commission_note(con: duckdb.DuckDBPyConnection) -> str:
    """Where the commission figures come from: the file, or the configured rates."""
    rates = html.escape(_rates_text(con))
    if not commissions_given(con):
        return (
            "<p><strong>未提供佣金文件 No commissions file was given:</strong> commission below is "
            f"estimated by applying the configured rates ({rates} by default; per shop in "
            "programme.toml) to the paid amount of each referred order along the inviter chain; "
            "completed orders count as settled, refunded or cancelled ones as reversed, the rest "
            "as pending.</p>"
        )
    rows = warehouse.scalar(con, "select count(*) from marts.commission_ledger")
    return (
        f"<p>佣金取自佣金文件 Commission is taken from the commissions file ({rows:,} accepted "
        f"rows); the configured rates ({rates} by default) are shown for comparison.</p>"
    )


def _h3(zh: str, en: str) -> str:
    return f"<h3>{html.escape(zh)} <small>{html.escape(en)}</small></h3>"


def report_section(con: duckdb.DuckDBPyConnection) -> str:
    """The distribution-health section of report.html, from the marts (every text escaped,
    charts as PNG data URIs)."""
    health = warehouse.query(con, "select * from marts.programme_health order by shop_id <> 'ALL', shop_id")
    levels = warehouse.query(
        con,
        "select level, status, orders, commission, round(effective_rate, 4) as effective_rate, "
        "configured_rate, beyond_programme from marts.commission_by_level "
        "where shop_id = 'ALL' order by level, status",
    )
    depth = warehouse.query(con, "select * from marts.programme_depth where shop_id = 'ALL'")
    cohorts = warehouse.query(
        con,
        "select cohort_month, channel, customers, round(repeat_30d_rate, 3) as repeat_30d, "
        "round(repeat_60d_rate, 3) as repeat_60d, round(repeat_90d_rate, 3) as repeat_90d, "
        "round(repeat_so_far_rate, 3) as repeat_so_far, round(refund_rate, 3) as refund_rate, "
        "round(flagged_share, 3) as flagged_share from marts.cohort_retention "
        "order by cohort_month, channel",
    )
    curves = warehouse.query(con, "select * from marts.cohort_curves")
    grades = warehouse.query(
        con, "select grade, count(*) as distributors from marts.distributor_scorecard group by 1 order by 1"
    )
    overall = health.filter(pl.col("shop_id") == "ALL").select(
        "distributors", "distributors_graded_d_or_e", "head_count_recruiters",
        pl.col("referred_gmv_share").round(3), "commission_earned", "commission_reversed",
        pl.col("upline_commission_share").round(3), "commission_beyond_paid_levels",
        "orders_commission_over_margin", "commission_above_margin", "max_depth",
        "accounts_beyond_allowed",
    )
    per_shop = health.filter((pl.col("shop_id") != "ALL") & (pl.col("referred_orders") > 0)).select(
        "shop_id", "paid_levels", "referred_orders", pl.col("referred_gmv").round(2),
        "commission_earned", pl.col("upline_commission_share").round(3),
        "commission_beyond_paid_levels", "deepest_commission_level",
        "orders_commission_over_margin", "max_depth", "accounts_beyond_allowed",
        "distributors", "distributors_graded_d_or_e",
    )
    depth_png = charts.png(depth_figure(depth))
    cohort_png = charts.png(cohort_figure(curves))
    return report.section(
        "分销健康", "Distribution health",
        _commission_note(con),
        _h3("整体", "The programme as a whole"), report.table(overall),
        _h3("分销员评级", "Distributors by grade"),
        "<p class='muted'>A = 无问题 no concern … E = 多项独立问题 several independent concerns "
        "(see reasons).</p>",
        report.table(grades),
        _h3("风险最高的分销员", "Riskiest distributors"),
        report.table(riskiest_distributors(con, 20), {"distributor_id": "分销员 distributor",
                                                      "grade": "评级 grade", "reasons": "原因 reasons"}),
        _h3("分销关系树深度", "Referral tree depth"),
        report.img(depth_png, "referral tree depth"),
        _h3("各级佣金与规则费率", "Commission paid per level against the configured rates"),
        report.table(levels),
        _h3("各店铺", "Per shop (shops with referred orders)"), report.table(per_shop, max_rows=100),
        _h3("新客留存：分销引入与自然", "Cohorts: customers by month of first order, referral vs organic"),
        "<p class='muted'>Read from the whole history the warehouse keeps (--keep-days): a "
        "customer's first order is the first it holds, so in the history's first weeks some "
        "earlier customers count as new. Repeat rates count only customers whose first order "
        "is old enough to be observed for the whole window (empty until one is); the curves "
        "show every day observed so far.</p>",
        report.img(cohort_png, "cohort repeat-purchase curves"),
        report.table(cohorts),
        anchor="health",
    )
