"""marts -> published files, written so that support never sees a half-written night.

Layout of an output folder:
    nights/<run_date>/      one complete folder per night (written as .tmp-*, then renamed)
    latest -> nights/<run_date>   swapped with one atomic rename
    order_scores.parquet, flagged_orders.csv, ... -> latest/<file> (links, so the
        contract's file names always point into one complete night)
"""

from __future__ import annotations

import base64
import ctypes
import errno
import hashlib
import hmac
import io
import json
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from orderguard.rules import RuleSet

log = logging.getLogger(__name__)

CONTRACT_FILES = (
    "order_scores.parquet",
    "flagged_orders.csv",
    "flagged_orders.xlsx",
    "verdicts_template.csv",
    "flagged_accounts.csv",
    "rings.csv",
    "quarantine.csv",
    "report.html",
    "run.json",
)
# A spreadsheet runs a cell as a formula (or DDE call) when its text starts with one of these;
# the full-width forms are included because Excel with a Chinese IME treats them alike.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
_FORMULA_RE = r"^[=+\-@\t\r\n＝＋－＠]"

ACTION_WORDS = ("追回佣金", "冻结佣金", "取消订单", "人工核实", "观察")
# what a ring's members are, counted in support's words: a fake-shipping ring's one member
# is the shop writing the waybills, every other ring's are accounts
MEMBERS_ZH = {"fake_shipping": "家店铺"}
ACCOUNTS_ZH = "个账号"
KIND_ZH = {
    "brushing": "刷单",
    "self_referral": "自邀小号",
    "malicious": "恶意下单",
    "fake_shipping": "虚假发货",
    "deep_chain": "超级分销链",
}
LEVEL_ZH = {"high": "高", "medium": "中", "low": "低"}
PII_COLUMNS = {"phone", "receiver_phone", "payment_account", "receiver_name", "address"}
VERDICT_COLUMNS = ("order_id", "verdict", "note")
_OPEN = ("created", "paid")
_REVERSED = ("cancelled", "refunded")


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Text that a spreadsheet would run as a formula is prefixed with an apostrophe
    (OWASP's advice for CSV injection); numbers stay numbers."""
    text_types = (pl.String, pl.Categorical, pl.Enum)
    return frame.with_columns(
        pl.when(pl.col(c).cast(pl.String).str.contains(_FORMULA_RE))
        .then(pl.lit("'") + pl.col(c).cast(pl.String))
        .otherwise(pl.col(c).cast(pl.String))
        .alias(c)
        for c, dtype in frame.schema.items()
        if isinstance(dtype, text_types) or dtype == pl.String
    )


def mask_phone(expr: pl.Expr) -> pl.Expr:
    """138****5678: enough for support to match a caller, not enough to be a phone book.
    A +86 / 0086 country code is dropped first, so it never leaks the number's first digits."""
    digits = expr.str.replace_all(r"\D", "").str.replace(r"^(?:0086|86)(1\d{10})$", "$1")
    return pl.when(digits.str.len_chars() >= 7).then(
        digits.str.slice(0, 3) + pl.lit("****") + digits.str.slice(-4)
    ).otherwise(pl.lit(None, pl.String))


def pseudonym(expr: pl.Expr, salt: str, prefix: str = "P") -> pl.Expr:
    """A salt-keyed HMAC-SHA256 token for a personal value (phone, payer, device): the same
    person gets the same token in every published file and night, and nobody without the
    salt can reverse or even confirm it by hashing candidate phone numbers. Base32 has no
    digits 0, 1, 8, 9, so a token never reads as a phone number."""
    key = salt.encode("utf-8")

    def token(values: pl.Series) -> pl.Series:
        return pl.Series([
            None if v is None else prefix + base64.b32encode(
                hmac.new(key, v.encode("utf-8"), hashlib.sha256).digest()).decode()[:16].lower()
            for v in values.to_list()
        ], dtype=pl.String)

    digits = expr.str.replace_all(r"\D", "").str.replace(r"^(?:0086|86)(1\d{10})$", "$1")
    return digits.map_batches(token, return_dtype=pl.String)


def mask_text(expr: pl.Expr) -> pl.Expr:
    """Keep the first 2 and last 2 characters of a personal value, star the rest."""
    n = expr.str.len_chars()
    return pl.when(n > 6).then(
        expr.str.slice(0, 2) + pl.lit("****") + expr.str.slice(-2)
    ).when(n > 0).then(pl.lit("****")).otherwise(expr)


def reasons_text(codes: pl.Expr, ruleset: RuleSet, lang: str) -> pl.Expr:
    mapping = {code: ruleset.text(code, lang) for code in ruleset.rules}
    return codes.list.eval(pl.element().replace(mapping)).list.join("；" if lang == "zh" else "; ")


def recommended_action(flag_threshold: float, high_threshold: float) -> pl.Expr:
    """What support should do with a flagged order, from its ring, status, money and score.

    Needs columns ring_kind, status, risk_level, score, reason_codes (a list), commission_pending,
    commission_settled, referrer_id, prior_verdict (null when support has not judged it),
    other_ring_kinds (a list: the kinds of the other rings the order is in, or null).
    - judged a false positive by support before (prior_verdict): 观察 (support cleared it;
      it is listed again only because it is still at the threshold); judged confirmed, with
      nothing to stop, freeze or claw back: 观察 too, not 人工核实 (support has checked it)
    - cancelled or refunded but its commission already settled: 追回佣金 (the commission was
      paid out on an order that was undone, the 佣金套利 pattern: claw it back)
    - an open order of a brushing or flood ring, listed under another (stronger) ring:
      取消订单, as in its own ring's list (cancelling the order voids its commission too)
    - commission fraud (self-referral, chains past the allowed depth): 冻结佣金 while its
      commission is pending or still to come (the order is open and came through a
      distributor's link), else 人工核实 (nothing left to freeze on the order; the commission
      already settled on it is shown beside; 观察 when the order was cancelled or refunded
      with nothing settled or pending: nothing is left to freeze or claw back, as for the
      other kinds below). An order outside any ring whose commission
      flows to the buyer's own other account (COMMISSION_TO_SELF) is self-referral too:
      its pending commission is frozen the same way
    - a shop faking its waybills: 人工核实 (the shop, not the buyer, is in question)
    - already cancelled or refunded: 冻结佣金 while commission is still pending on it, else
      观察 (nothing left to stop; watch the accounts)
    - brushing/flood or high risk: 取消订单 while the order is still open, else 冻结佣金 when
      commission is still pending, else 人工核实
    - an open order in a run of bulk orders (BULK_ORDER_FLOOD, a flood not yet cancelled):
      人工核实, so the shop checks before it ships
    - medium risk, no ring, in the lower half between flag and high threshold: 观察
    - otherwise 人工核实
    """
    kind, status = pl.col("ring_kind"), pl.col("status")
    pending = pl.col("commission_pending").fill_null(0) > 0
    settled = pl.col("commission_settled").fill_null(0) > 0
    undone = status.is_in(_REVERSED)
    to_come = status.is_in(_OPEN) & pl.col("referrer_id").is_not_null()
    firm = kind.is_in(["brushing", "malicious"]) | (pl.col("risk_level") == "high")
    commission_fraud = (kind.is_in(["self_referral", "deep_chain"])
                        | pl.col("reason_codes").list.contains("COMMISSION_TO_SELF"))
    cleared = (pl.col("prior_verdict") == "false_positive").fill_null(False)
    checked = (pl.col("prior_verdict") == "confirmed").fill_null(False)
    also_fake = (pl.col("other_ring_kinds").list.set_intersection(pl.lit(["brushing", "malicious"]))
                 .list.len() > 0).fill_null(False)
    action = (
        pl.when(cleared).then(pl.lit("观察"))
        .when(undone & settled).then(pl.lit("追回佣金"))
        .when(also_fake & status.is_in(_OPEN)).then(pl.lit("取消订单"))
        .when(commission_fraud & (pending | to_come))
        .then(pl.lit("冻结佣金"))
        .when(kind.is_in(["self_referral", "deep_chain"]) & undone).then(pl.lit("观察"))
        .when(kind.is_in(["self_referral", "deep_chain"])).then(pl.lit("人工核实"))
        .when(kind == "fake_shipping").then(pl.lit("人工核实"))
        .when(undone & pending).then(pl.lit("冻结佣金"))
        .when(undone).then(pl.lit("观察"))
        .when(firm & status.is_in(_OPEN)).then(pl.lit("取消订单"))
        .when(firm & pending).then(pl.lit("冻结佣金"))
        .when(firm).then(pl.lit("人工核实"))
        .when(status.is_in(_OPEN) & pl.col("reason_codes").list.contains("BULK_ORDER_FLOOD"))
        .then(pl.lit("人工核实"))
        .when(pl.col("score") < (flag_threshold + high_threshold) / 2).then(pl.lit("观察"))
        .otherwise(pl.lit("人工核实"))
    )
    return pl.when(checked & (action == "人工核实")).then(pl.lit("观察")).otherwise(action)


FEATURE_ZH = {  # the measured fact behind a reason, in words support can read
    "device_accounts": "同设备账号数",
    "payer_accounts": "同支付账号的账号数",
    "phone_accounts": "同手机号账号数",
    "address_accounts": "同地址账号数",
    "referrer_link_weight": "与获佣分销员的关联强度",
    "burst_ratio": "下单量为平时的倍数",
    "buyer_exact_price_share": "按标价成交占比",
    "pay_delay_s": "下单到付款(秒)",
    "ship_to_deliver_h": "发货到签收(小时)",
    "review_delay_min": "签收到好评(分钟)",
    "account_age_days": "下单时账号注册天数",
    "account_age_s": "注册到下单(秒)",
    "buyer_orders": "买家近期订单数",
    "instant_siblings": "同设备/支付账号/手机号下注册即下单的其他账号数",
    "siblings_within_10min": "同邀请人10分钟内注册数",
    "refund_after_settle_h": "佣金结算后退款(小时)",
    "cancel_share_at_shop": "在本店取消/退款占比",
    "bulk_orders_at_shop": "在本店大批量订单数",
    "commission_max_level": "佣金层级",
    "buyer_referral_depth": "推荐层级",
    "self_commission_level": "佣金流向本人其他账号的层级",
}


def fact_features(ruleset: RuleSet) -> list[str]:
    """Features whose value is worth showing as evidence (not rings, models or flags)."""
    return sorted({r.condition.feature for r in ruleset.rules.values() if r.family not in ("ring", "model")})


def evidence_facts(ruleset: RuleSet, schema: dict) -> pl.Expr:
    """The measured value behind each reason that fired (e.g. 同地址账号数=7), strongest first.
    Needs reason_codes and the rules' feature columns present in `schema`."""
    parts = []
    for code, rule in sorted(ruleset.rules.items(), key=lambda kv: (-kv[1].points, kv[0])):
        feature = rule.condition.feature
        if rule.family in ("ring", "model") or feature not in schema or schema[feature] == pl.Boolean:
            continue  # rings have their own evidence; a yes/no flag is said by the reason text
        value = pl.col(feature).cast(pl.Float64).round(2).cast(pl.String).str.replace(r"\.0$", "")
        parts.append(
            pl.when(pl.col("reason_codes").list.contains(code) & pl.col(feature).is_not_null())
            .then(pl.lit(f"{FEATURE_ZH.get(feature, feature)}=") + value)
            .otherwise(pl.lit(None, pl.String))
        )
    if not parts:
        return pl.lit(None, pl.String)
    # two rules may read one feature (DEVICE_SHARED and SHARED_DEVICE): say the fact once
    facts = pl.concat_list(parts).list.drop_nulls().list.unique(maintain_order=True)
    return facts.list.join("；").replace("", None)


def _yuan(amount: pl.Expr) -> pl.Expr:
    """Money as text with two decimals (1719.80, not 1719.8), as the money columns show it."""
    return amount.cast(pl.Float64).round(2).cast(pl.Decimal(18, 2)).cast(pl.String)


def evidence_text(ruleset: RuleSet, schema: dict) -> pl.Expr:
    """Chinese evidence for support: the ring (kind, id, size, orders, money) and what the
    detector saw, then the measured facts; English reason text when neither exists.
    Needs ring_kind, ring_id, ring_size, ring_orders, ring_gmv, ring_commission,
    ring_evidence, reason_codes and the rules' feature columns (see evidence_facts)."""
    kind_zh = pl.col("ring_kind").replace_strict(KIND_ZH, default=pl.col("ring_kind"), return_dtype=pl.String)
    members = pl.col("ring_kind").replace_strict(MEMBERS_ZH, default=ACCOUNTS_ZH, return_dtype=pl.String)
    ring = pl.when(pl.col("ring_id").is_not_null()).then(
        pl.format(
            "{}团伙 {}：{} {}，{} 单，金额 {} 元，涉及佣金 {} 元（{}）",
            kind_zh, pl.col("ring_id"), pl.col("ring_size"), members, pl.col("ring_orders"),
            _yuan(pl.col("ring_gmv")), _yuan(pl.col("ring_commission")),
            pl.col("ring_evidence").fill_null(""),
        )
    )
    facts = evidence_facts(ruleset, schema)
    text = pl.concat_str([ring, facts], separator="；", ignore_nulls=True).replace("", None)
    return pl.coalesce(text, reasons_text(pl.col("reason_codes"), ruleset, "en"))


def write_csv(frame: pl.DataFrame, path: Path, bom: bool = True) -> None:
    # UTF-8 with BOM so Excel on Chinese Windows opens it without mojibake
    neutralise_formulas(frame).write_csv(path, include_bom=bom)


def copy_to_parquet(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> int:
    """Write a query's rows (in its order) straight from DuckDB to Parquet; returns the rows."""
    con.sql(sql).write_parquet(str(path), compression="zstd")
    return pq.read_metadata(path).num_rows


def write_verdict_template(order_ids: pl.Series, path: Path,
                           carried: pl.DataFrame | None = None) -> None:
    """verdicts_template.csv beside flagged_orders.csv: support fills verdict (confirmed /
    false_positive, or 确认 / 误报) and a note; `orderguard feedback --verdicts` reads it.
    `carried` (order_id, first_listed): earlier nights' orders still awaiting a verdict and
    not in tonight's list, after tonight's, with carried_from naming the night whose
    flagged_orders.csv holds their row (empty for tonight's orders)."""
    frame = pl.DataFrame({"order_id": order_ids.cast(pl.String)}).with_columns(
        pl.lit(None, pl.String).alias("carried_from"))
    if carried is not None:
        frame = pl.concat([frame, carried.select(pl.col("order_id").cast(pl.String),
                                                 pl.col("first_listed").cast(pl.String).alias("carried_from"))])
    frame = frame.with_columns(pl.lit(None, pl.String).alias("verdict"),
                               pl.lit(None, pl.String).alias("note"))
    write_csv(frame.select(*VERDICT_COLUMNS, "carried_from"), path)


# Excel slows to a crawl long before its 1,048,576-row limit with rows of Chinese evidence:
# the workbook holds the highest-scored rows (the frame comes sorted by score), the CSV
# always holds every row.
XLSX_MAX_ROWS = 100_000
# the workbook's created/modified stamp, fixed so that a rerun writes the same bytes
_XLSX_STAMP = b"2000-01-01T00:00:00Z"
_XLSX_STAMP_RE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_XLSX_AUTHOR = (b"<dc:creator></dc:creator>", b"<dc:creator>orderguard</dc:creator>")


def write_xlsx(frame: pl.DataFrame, path: Path, sheet: str = "flagged_orders",
               max_rows: int = XLSX_MAX_ROWS) -> int:
    """The first `max_rows` rows as an Excel workbook: text cells stored as text (never
    formulas), a frozen header row and a filter; when rows are left out, a last row says so.
    Written by rust_xlsxwriter (rustpy-xlsxwriter): 100k rows of a 10M-order night took ~11
    CPU-s cell by cell in XlsxWriter, beside the health marts that need both cores, and
    ~2 s here. It stamps the time of writing into docProps/core.xml, so the archive is
    copied once with a fixed stamp: a rerun writes the same bytes. Returns the rows left out."""
    import rustpy_xlsxwriter

    left_out = max(0, frame.height - max_rows)
    safe = neutralise_formulas(frame.head(max_rows))
    widths = []
    for c, dtype in safe.schema.items():
        width = min(60, max(10, len(c) + 2))
        if dtype == pl.String and safe.height:
            width = min(60, max(width, int(safe[c].head(200).str.len_chars().max() or 0) + 2))
        widths.append(width)
    decimals = [c for c, t in safe.schema.items() if isinstance(t, pl.Decimal)]
    rows = safe.with_columns(pl.col(decimals).cast(pl.Float64)) if decimals else safe
    if left_out:  # after one empty row, in the first column (sorted by score, they stay last)
        first = rows.columns[0]
        note = (f"另有 {left_out} 条风险较低的订单未列出，见 flagged_orders.csv / "
                f"{left_out} lower-scored flagged orders are only in flagged_orders.csv")
        rows = pl.concat([rows.with_columns(pl.col(first).cast(pl.String)),
                          pl.DataFrame({first: [None, note]}, schema={first: pl.String})],
                         how="diagonal")
    written = io.BytesIO()
    rustpy_xlsxwriter.write_worksheet(rows, written, sheet_name=sheet, freeze_row=1,
                                      autofilter=True, column_widths=widths)
    _save_with_fixed_properties(written, path)
    if left_out:
        log.warning("%s holds the top %d of %d flagged orders; the CSV has them all",
                    path.name, max_rows, frame.height)
    return left_out


def _save_with_fixed_properties(workbook: io.BytesIO, path: Path) -> None:
    """Copy an .xlsx archive to `path` with a fixed created/modified stamp and orderguard as
    author in docProps/core.xml (the writer puts the time of writing there)."""
    with zipfile.ZipFile(workbook) as source, zipfile.ZipFile(path, "w") as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == "docProps/core.xml":
                data = _XLSX_STAMP_RE.sub(_XLSX_STAMP, data).replace(*_XLSX_AUTHOR)
            target.writestr(member, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE): readers
    see the old folder or the new one, never neither. False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd, rename_exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def check_writable(out_dir: Path) -> None:
    """Raise the OSError a write into out_dir meets (read-only, no permission, a file)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "--out names a file, not a folder", str(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = out_dir / f".write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


def swap_in(out_dir: Path, staged: Path, run_date: str) -> Path:
    """Move a complete staged folder into nights/<run_date> and point `latest` at it."""
    nights = out_dir / "nights"
    nights.mkdir(parents=True, exist_ok=True)
    final = nights / run_date
    if final.exists() and _exchange(staged, final):
        shutil.rmtree(staged, ignore_errors=True)  # now the night's previous results
    elif final.exists():
        # two renames: a run killed between them leaves .old-*, which the next run's
        # staging_folder() puts back or removes
        old = nights / f".old-{run_date}-{os.getpid()}"
        final.rename(old)
        staged.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(final)
    latest = out_dir / "latest"
    if latest.is_symlink() and Path(os.readlink(latest)).name > run_date:
        # a rescan of an earlier night: support keeps working from the newest one
        log.info("night %s rewritten; latest stays on %s", run_date, Path(os.readlink(latest)).name)
        return final
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
    for stale in [*out_dir.glob(".tmp-*"), *out_dir.glob(f"*/{FORGOTTEN}*")]:  # a killed run's
        shutil.rmtree(stale, ignore_errors=True)
    for old in (out_dir / "nights").glob(".old-*"):  # a run killed between swap_in's renames
        night = out_dir / "nights" / old.name.removeprefix(".old-").rsplit("-", 1)[0]
        if night.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(night)  # the night's complete previous results, which `latest` names
    folder = out_dir / f".tmp-{run_id}"
    folder.mkdir()
    return folder


FORGOTTEN = ".forgotten-"  # a folder being removed: never put back, never read
NIGHT_FOLDER = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"  # nights/<date>, as a glob


def folders_to_forget(out_dir: Path, kept_from: str, named: set[str], keep_days: int,
                      now: float) -> dict[str, list[Path]]:
    """The published folders the kept history no longer speaks for: nights/<date> before
    `kept_from` (the first night --keep-days keeps) that no kept row names (`named`: nights
    ops.published_flags still lists as an order's first, which support's verdict template
    points to) and that `latest` does not show; refused/<run_id> folders not written to for
    `keep_days` days. Without this a night's folder (order_scores.parquet alone ~200 MB at
    10M orders) stays for good, while the warehouse stops growing after --keep-days."""
    latest = out_dir / "latest"
    shown = Path(os.readlink(latest)).name if latest.is_symlink() else None
    nights = [folder for folder in sorted((out_dir / "nights").glob(NIGHT_FOLDER))
              if folder.is_dir() and folder.name < kept_from and folder.name not in named
              and folder.name != shown]
    refused = [folder for folder in sorted((out_dir / "refused").glob("*"))
               if folder.is_dir() and not folder.name.startswith(".")
               and now - folder.stat().st_mtime > keep_days * 86400]
    return {"night_folders": nights, "refused_folders": refused}


def forget_folders(folders: list[Path]) -> None:
    """Remove each folder: renamed aside first, so a run killed mid-way leaves no half a
    night under a night's name (the next run's staging_folder removes what is left)."""
    for folder in folders:
        aside = folder.with_name(FORGOTTEN + folder.name)
        folder.rename(aside)
        shutil.rmtree(aside)


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True, default=str), "utf-8")
