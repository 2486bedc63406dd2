"""Ingest: read the input folder into the raw layer (``raw.<table>``, every value VARCHAR).

For each contract table (orders and accounts required, products and commissions optional)
the folder holds ``NAME.csv`` or ``NAME.parquet`` (file name matched case-insensitively).
``load_raw`` creates ``raw.<table>`` with

* every column of the file, as VARCHAR, exactly as read (empty fields are NULL); unknown
  extra columns are kept under their own lower-cased, trimmed header;
* headers mapped to contract names through ``COLUMN_ALIASES`` (below);
* ``_row`` BIGINT: the 1-based data record number in the file, header excluded. A quoted
  field may hold line breaks, so this counts CSV records, not physical lines; completely
  blank lines are skipped by the CSV reader and not counted. For Parquet it is the row's
  position in the file;
* ``_file`` VARCHAR: the file name (``orders.csv``), as quarantine reports it.

An absent optional table becomes an empty ``raw.<table>`` with the contract columns, so a
table left over from an earlier night is never reused.

Structural problems raise ``InputError`` naming the file (and the column or line): a
missing required file or column, both ``.csv`` and ``.parquet`` present, an empty required
file, binary content, text in no supported encoding, a quote left open over the records
after it, and more records the CSV reader cannot split into the header's fields than
``MAX_UNREADABLE_RECORDS`` and ``MAX_UNREADABLE_SHARE`` of the file allow. Fewer are those
rows' problem: each goes to ``raw.unreadable_records`` (its record number, the reader's
complaint, its text) and validation quarantines it; the rows after it keep their record
numbers. Nothing is loaded row by row in Python: CSV goes through DuckDB's
parallel ``read_csv`` (UTF-8 directly; GBK/GB18030 and UTF-16 are first transcoded to a
temporary UTF-8 file in streaming chunks).

Row numbers: ``create table ... as select ... from read_csv(...)`` with DuckDB's default
``preserve_insertion_order = true`` stores rows in file order even when the file is read by
several threads, so ``rowid + 1`` is the record number. ``load_raw`` sets that option
explicitly; benchmarks/bench_ingest.py and tests/test_ingest.py check the claim on files of
2M and 300k rows.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from orderguard import contract
from orderguard.contract import Table

log = logging.getLogger(__name__)

# Input header -> contract column, per table. Headers are matched after lower-casing,
# dropping a trailing bracketed unit ("金额(元)", "金额（元）") and removing spaces, "_", "-",
# "." and "/", so "Order ID", "order_id", "ORDERID" and "order-id" all match order_id.
# The contract name itself always wins; after it, aliases are tried in the order listed,
# so when a file has several candidates (实付金额 and 订单金额) the earlier alias becomes
# the contract column and the others are kept as extra columns under their own names.
# A bare word that often heads other data is no alias ("device" is often the phone model,
# "refund" a yes/no, "distributor" an id, "total" a count): the contract promises that
# unknown columns are ignored, and such a column would be read as one of its own.
COLUMN_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "orders": {
        "order_id": ("订单号", "订单编号", "订单id", "主订单号", "order no", "order number",
                     "order sn", "tid"),
        "shop_id": ("店铺id", "店铺", "店铺编号", "商家id", "门店id", "shop", "store id",
                    "merchant id", "kdt id"),
        "buyer_id": ("买家id", "买家", "会员id", "用户id", "下单人id", "buyer", "user id",
                     "member id", "customer id"),
        "product_id": ("商品id", "商品编号", "商品编码", "sku id", "sku", "item id", "goods id"),
        "quantity": ("数量", "购买数量", "商品数量", "qty"),
        "amount": ("实付金额", "实付款", "支付金额", "付款金额", "订单金额", "金额",
                   "paid amount", "pay amount", "total amount"),
        "created_at": ("下单时间", "创建时间", "订单创建时间", "created", "create time",
                       "created time", "order time"),
        "paid_at": ("付款时间", "支付时间", "pay time", "paid time", "payment time"),
        "status": ("订单状态", "状态", "order status", "state"),
        "refunded_at": ("退款时间", "refund time"),
        "refund_amount": ("退款金额", "refund fee"),
        "referrer_id": ("推荐人", "推荐人id", "分销员", "分销员id", "推广员", "referrer",
                        "promoter id", "distributor id", "sharer id"),
        "device_id": ("设备号", "设备id"),
        "ip": ("下单ip", "ip地址", "client ip", "ip address"),
        "receiver_name": ("收货人", "收货人姓名", "收件人", "consignee", "receiver"),
        "receiver_phone": ("收货人手机", "收货人手机号", "收货人电话", "收件人电话", "手机号",
                           "联系电话", "receiver mobile", "mobile", "phone"),
        "address": ("收货地址", "详细地址", "地址", "shipping address", "receiver address"),
        "payment_account": ("支付账号", "付款账号", "支付账户", "payer", "payer account"),
        "carrier": ("快递公司", "物流公司", "courier", "express company"),
        "tracking_no": ("快递单号", "运单号", "物流单号", "tracking number", "waybill",
                        "waybill no", "express no"),
        "shipped_at": ("发货时间", "ship time", "shipped time"),
        "delivered_at": ("签收时间", "核销时间", "确认收货时间", "收货时间", "sign time",
                         "delivered time", "redeemed at"),
        "review_rating": ("评分", "评价星级", "星级", "review score"),
        "reviewed_at": ("评价时间", "review time"),
    },
    "accounts": {
        "account_id": ("用户id", "会员id", "账号id", "用户", "会员", "user id", "member id",
                       "uid"),
        "registered_at": ("注册时间", "加入时间", "创建时间", "register time", "reg time",
                          "created at", "create time"),
        "inviter_id": ("邀请人", "邀请人id", "推荐人", "上级", "上级id", "inviter",
                       "invited by", "referrer id", "parent id"),
        "is_distributor": ("是否分销员", "是否推广员", "is promoter"),
        "phone": ("手机号", "手机", "手机号码", "电话", "mobile", "phone number", "tel"),
        "device_id": ("设备号", "设备id", "注册设备"),
        "ip": ("注册ip", "ip地址", "register ip", "reg ip"),
        "nickname": ("昵称", "用户昵称", "会员昵称", "nick", "nick name"),
    },
    "products": {
        "product_id": ("商品id", "商品编号", "商品编码", "sku id", "sku", "item id", "goods id"),
        "shop_id": ("店铺id", "店铺", "商家id", "shop", "store id", "kdt id"),
        "name": ("商品名称", "商品名", "名称", "商品标题", "标题", "title", "product name",
                 "item name", "goods name"),
        "price": ("价格", "售价", "单价", "销售价", "list price", "sale price"),
        "cost": ("成本", "成本价", "进价", "cost price"),
        "category": ("类目", "商品类目", "分类", "商品分类", "category name"),
        "is_virtual": ("是否虚拟", "是否虚拟商品", "虚拟商品", "virtual"),
    },
    "commissions": {
        "order_id": ("订单号", "订单编号", "订单id", "order no", "tid"),
        "beneficiary_id": ("受益人", "受益人id", "获佣人", "分销员", "分销员id", "beneficiary",
                           "distributor id", "promoter id"),
        "level": ("层级", "分佣层级", "级别", "等级", "tier"),
        "amount": ("佣金", "佣金金额", "金额", "commission", "commission amount"),
        "status": ("结算状态", "佣金状态", "状态"),
        "settled_at": ("结算时间", "settle time", "settled time"),
    },
}

RESERVED_COLUMNS = ("_row", "_file", "rowid")  # an input header with these names gets "_2"
MAX_LINE_BYTES = 64 * 1024 * 1024  # longest CSV record DuckDB will read (a 10 MB field is fine)
_SAMPLE_BYTES = 1024 * 1024  # bytes read to sniff the encoding and parse the header
_CHUNK_BYTES = 16 * 1024 * 1024  # transcoding chunk
_KEY_DROP = re.compile(r"[\s_\-./\u3000]+")
_UNIT_SUFFIX = re.compile(r"\s*[(（][^()（）]*[)）]\s*$")


class InputError(Exception):
    """A fatal problem with the input files; the message names the file and column or line."""


@dataclass
class RawTable:
    name: str
    file: str
    rows: int
    encoding: str
    columns: list[str]  # raw column names in file order, as mapped to contract names
    # headers read as a contract column under another name (an alias): {"下单时间": "created_at"}
    renamed: dict[str, str] = field(default_factory=dict)
    # records that could not be split into fields: in raw.unreadable_records, not in rows
    unreadable: int = 0


def load_raw(
    con: duckdb.DuckDBPyConnection, input_dir: Path, encoding: str | None = None,
    scratch_dir: Path | None = None,
) -> dict[str, RawTable]:
    """Load every contract table found in ``input_dir`` into ``raw.<table>``.

    ``encoding`` forces a text encoding for all CSV files (any Python codec name, e.g.
    ``"gbk"``); by default each file is sniffed: UTF-8 (with or without BOM), UTF-16 with a
    BOM, else GB18030 (a superset of GBK). Returns the loaded tables by name; absent
    optional tables are not in the result but exist as empty ``raw`` tables.
    ``scratch_dir`` is where a transcoded copy goes when ``con`` is in memory (a partition's
    own output folder); a warehouse file's copy goes beside it.
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError(f"input folder {input_dir} does not exist or is not a folder")
    if encoding is not None:
        encoding = _codec_name(encoding)
    # Check every file's presence, encoding and header before the slow loads start.
    plans = [_plan(table, input_dir, encoding) for table in contract.TABLES.values()]
    con.execute("set preserve_insertion_order = true").fetchall()
    scratch = _scratch_prefix(con, scratch_dir)
    create_unreadable_records(con)
    loaded: dict[str, RawTable] = {}
    for table, plan in zip(contract.TABLES.values(), plans, strict=True):
        if plan is None:
            create_empty_raw(con, table)
            continue
        loaded[table.name] = plan.load(con, scratch)
        log.info("raw.%s: %d rows from %s (%s)", table.name, loaded[table.name].rows,
                 plan.path.name, loaded[table.name].encoding)
        for header, name in loaded[table.name].renamed.items():
            log.info("%s: column %r read as %s", plan.path.name, header, name)
    return loaded


def create_empty_raw(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    """``raw.<table>`` with the contract columns and no rows (an absent optional table)."""
    cols = ", ".join(f"{c} varchar" for c in table.column_names)
    con.execute(
        f"create or replace table raw.{table.name} ({cols}, _row bigint, _file varchar)"
    ).fetchall()


def map_columns(table: Table, headers: list[str], label: str) -> list[str]:
    """Raw column names for a file's headers: contract names via COLUMN_ALIASES, other
    headers lower-cased and trimmed, made unique with a ``_2``, ``_3`` suffix."""
    keys = [_match_key(h) for h in headers]
    names: list[str | None] = [None] * len(headers)
    aliases = COLUMN_ALIASES.get(table.name, {})
    for column in table.columns:
        for candidate in (column.name, *aliases.get(column.name, ())):
            wanted = _match_key(candidate)
            hit = next((i for i, k in enumerate(keys) if k == wanted and names[i] is None), None)
            if hit is not None:
                names[hit] = column.name
                break
    used = {n for n in names if n} | set(table.column_names) | set(RESERVED_COLUMNS)
    for i, header in enumerate(headers):
        if names[i] is None:
            base = header.replace("\ufeff", "").strip().lower() or f"column_{i + 1}"
            name, n = base, 2
            while name in used:
                name, n = f"{base}_{n}", n + 1
            names[i] = name
            used.add(name)
    result = [n for n in names if n is not None]
    missing = [c for c in table.required_columns if c not in result]
    if missing:
        shown = ", ".join(repr(h if len(h) <= 40 else h[:40] + "...") for h in headers[:30])
        shown += " ..." if len(headers) > 30 else ""
        raise InputError(
            f"{label}: missing required column(s) {', '.join(missing)}; the header has "
            f"{shown} (accepted header names: orderguard.ingest.COLUMN_ALIASES)"
        )
    return result


def renamed_headers(table: Table, headers: list[str], names: list[str]) -> dict[str, str]:
    """The headers map_columns read as a contract column written otherwise, so the run
    record (and the log) shows e.g. that a "Device" column was taken for device_id, or
    "Account ID" for account_id."""
    contract_names = set(table.column_names)
    return {header: name for header, name in zip(headers, names, strict=True)
            if name in contract_names and header.replace("\ufeff", "").strip() != name}


def _match_key(header: str) -> str:
    text = header.replace("\ufeff", "").strip().lower()
    text = _UNIT_SUFFIX.sub("", text) or text
    return _KEY_DROP.sub("", text)


def _codec_name(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError as exc:
        raise InputError(f"unknown text encoding {encoding!r}") from exc


def find_file(table: Table, input_dir: Path) -> Path | None:
    found = sorted(
        p for p in input_dir.iterdir()
        if p.name.lower() in (f"{table.name}.csv", f"{table.name}.parquet") and p.is_file()
    )
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        raise InputError(f"{input_dir}: found {names}; keep exactly one file for {table.name}")
    return found[0] if found else None


@dataclass
class _Plan:
    table: Table
    path: Path
    encoding: str  # Python codec name, or "parquet"
    forced: bool  # the caller chose the encoding (no fallback)
    names: list[str]
    headers: list[str] = field(default_factory=list)  # as the file spells them
    unreadable: int = 0  # records quarantined as unreadable (raw.unreadable_records)

    def load(self, con: duckdb.DuckDBPyConnection,
             scratch: tuple[Path | None, str] = (None, "orderguard-ingest-")) -> RawTable:
        if self.encoding == "parquet":
            _create_raw_from_parquet(con, self)
        elif self.encoding in ("utf-8", "utf-8-sig"):
            try:
                _create_raw_from_csv(con, self, self.path)
            except InputError as exc:
                # A UTF-8-looking first megabyte followed by GBK text further down.
                sniffed_utf8 = self.encoding == "utf-8" and not self.forced
                if not sniffed_utf8 or not isinstance(exc, _NotUtf8Error):
                    raise
                log.info("%s is not UTF-8 after all; reading it as GB18030", self.path.name)
                self.encoding = "gb18030"
                try:
                    self._load_transcoded(con, scratch)
                except InputError:  # neither: the UTF-8 error names the real line; where
                    # GB18030 choked on the UTF-8 text before it would point at a good line
                    raise InputError(f"{exc} (the rest of the file is UTF-8, not GB18030: that "
                                     "row is the one to fix or re-export)") from None
        else:
            self._load_transcoded(con, scratch)
        rows = con.execute(f"select count(*) from raw.{self.table.name}").fetchall()[0][0]
        return RawTable(self.table.name, str(self.path), int(rows), self.encoding, self.names,
                        renamed_headers(self.table, self.headers, self.names), self.unreadable)

    def _load_transcoded(self, con: duckdb.DuckDBPyConnection, scratch: tuple[Path | None, str]) -> None:
        with tempfile.TemporaryDirectory(dir=scratch[0], prefix=scratch[1]) as tmp:
            utf8 = Path(tmp) / f"{self.table.name}.utf8.csv"
            _transcode(self.path, self.encoding, utf8)
            _create_raw_from_csv(con, self, utf8)


def _plan(table: Table, input_dir: Path, encoding: str | None) -> _Plan | None:
    path = find_file(table, input_dir)
    if path is None:
        if table.required:
            raise InputError(
                f"{input_dir}: required file {table.name}.csv (or {table.name}.parquet) "
                "is missing"
            )
        return None
    if path.stat().st_size == 0:
        if table.required:
            raise InputError(f"{path.name} is empty (0 bytes); expected a header row")
        log.warning("%s is empty (0 bytes); treating %s as absent", path.name, table.name)
        return None
    if path.suffix.lower() == ".parquet":
        return _Plan(table, path, "parquet", False, [])
    with path.open("rb") as f:
        head = f.read(_SAMPLE_BYTES)
    if not head.removeprefix(codecs.BOM_UTF8).strip():  # only a BOM or blank lines
        if table.required:
            raise InputError(f"{path.name} holds no header row (only blank lines or a byte-order mark)")
        log.warning("%s holds only blank lines; treating %s as absent", path.name, table.name)
        return None
    codec = encoding or _sniff_encoding(head, path.name)
    headers = _read_header(head, codec, path.name)
    return _Plan(table, path, codec, encoding is not None, map_columns(table, headers, path.name),
                 headers)


def _looks_binary(head, nul, newline) -> bool:
    """Binary data (an image, UTF-16 without its BOM) is full of NULs, or has one in its
    first line; a stray NUL in a value is that row's problem (validation quarantines it)."""
    first = head.find(nul)
    return first >= 0 and (first < head.find(newline) or newline not in head
                           or head.count(nul) > len(head) // 10_000 + 1)


def _sniff_encoding(head: bytes, label: str) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if head.startswith(b"PK\x03\x04"):
        raise InputError(f"{label} is a zip archive or Excel workbook, not CSV: save it as CSV")
    if head.startswith(b"PAR1"):
        raise InputError(f"{label} holds Parquet data: name it {Path(label).stem}.parquet")
    if _looks_binary(head, b"\x00", b"\n"):
        nul = head.find(b"\x00")
        raise InputError(f"{label} is not a text CSV file (binary data: a NUL byte at byte {nul})")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        codecs.getincrementaldecoder("gb18030")().decode(head, final=False)
        return "gb18030"
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{label} is neither UTF-8 nor GBK/GB18030 text (undecodable bytes at byte "
            f"{exc.start}); is it a binary file?"
        ) from None


def _read_header(head: bytes, codec: str, label: str) -> list[str]:
    try:
        text = codecs.getincrementaldecoder(codec)().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise InputError(f"{label} is not valid {codec} text (at byte {exc.start})") from None
    if _looks_binary(text, "\x00", "\n"):
        raise InputError(f"{label} is not a text CSV file (it contains NUL characters)")
    text = text.lstrip("\ufeff")
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), strict=True), [])
    except csv.Error as exc:
        raise InputError(f"{label}: the header row cannot be parsed as CSV ({exc})") from None
    if not any(h.strip() for h in header):
        raise InputError(f"{label}: the first line is not a header row (it is blank)")
    return header


def _transcode(src: Path, codec: str, dest: Path) -> None:
    """Stream ``src`` from ``codec`` into UTF-8 at ``dest`` in chunks (constant memory)."""
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    offset = lines = 0
    with src.open("rb") as fin, dest.open("wb") as fout:
        while True:
            chunk = fin.read(_CHUNK_BYTES)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                at = max(exc.start, 0)
                line = lines + chunk[:at].count(b"\n") + 1
                raise InputError(
                    f"{src.name} is not valid {codec} text: undecodable bytes near byte "
                    f"{offset + at} (line {line}); pass the right encoding or re-export as UTF-8"
                ) from None
            fout.write(text.encode("utf-8"))
            if not chunk:
                return
            offset += len(chunk)
            lines += chunk.count(b"\n")


# Records the reader cannot split into the header's fields are kept aside (DuckDB's rejects
# tables, temporary, named here) instead of stopping the read: see _keep_unreadable_records.
_REJECTS = "_og_csv_rejects"
_REJECT_SCANS = "_og_csv_reject_scans"
# the reader keeps at most this many (a file broken throughout would otherwise copy every
# record aside before being refused); reaching it refuses the file
MAX_REJECTS_KEPT = 100_000
_CSV_OPTIONS = (
    "auto_detect = false, header = true, delim = ',', quote = '\"', escape = '\"', "
    "strict_mode = true, encoding = 'utf-8', columns = $columns, "
    f"max_line_size = {MAX_LINE_BYTES}, store_rejects = true, rejects_limit = {MAX_REJECTS_KEPT}, "
    f"rejects_table = '{_REJECTS}', rejects_scan = '{_REJECT_SCANS}'"
)
# A record that cannot be split into the header's fields (a stray comma in an address, a
# field missing, a quote inside a value) is that row's problem, not the night's: it goes to
# quarantine like any bad row and the rest of the export is scanned. Beyond this many, and
# beyond this share of the file's records, the file itself is wrong (another delimiter, a
# shifted header) and is refused, naming the first such record.
MAX_UNREADABLE_RECORDS = 10
MAX_UNREADABLE_SHARE = 0.01
# ends every unreadable record's reason: its quarantined value is the record's whole text,
# personal data included, which quarantine.csv masks as it masks a phone or an address
UNREADABLE_REASON_END = "; nothing of it was loaded"


def create_unreadable_records(con: duckdb.DuckDBPyConnection, replace: bool = True) -> None:
    """raw.unreadable_records, emptied (every load_raw) or only made when missing."""
    # grain: one row per record of tonight's CSV input that could not be split into fields
    # (validate.stage quarantines each)
    create = "create or replace table" if replace else "create table if not exists"
    con.execute(f"{create} raw.unreadable_records (table_name varchar, _file varchar, "
                "_row bigint, column_name varchar, reason varchar, record varchar)").fetchall()


class _NotUtf8Error(InputError):
    """DuckDB met bytes that are not UTF-8. Told apart by the exception, not the message we
    build (which is cut to 300 characters after the offending record, often losing it)."""


def _csv_error(label: str, exc: Exception) -> InputError:
    kind = _NotUtf8Error if "not utf-8 encoded" in str(exc).lower() else InputError
    return kind(_describe_csv_error(label, exc))


def _create_raw_from_csv(con: duckdb.DuckDBPyConnection, plan: _Plan, path: Path) -> None:
    table = plan.table.name
    sql = (
        f"create or replace table raw.{table} as "
        f"select *, null::bigint as _row, $file::varchar as _file "
        f"from read_csv($path, {_CSV_OPTIONS})"
    )
    params = {"path": str(path), "file": plan.path.name,
              "columns": {name: "VARCHAR" for name in plan.names}}
    _drop_rejects(con)
    try:
        con.execute(sql, params).fetchall()
    except (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.IOException,
            duckdb.BinderException, duckdb.ParserException) as exc:
        raise _csv_error(plan.path.name, exc) from None
    except duckdb.Error as exc:
        if "CSV Error" not in str(exc):
            raise
        raise _csv_error(plan.path.name, exc) from None
    try:
        plan.unreadable = _keep_unreadable_records(con, plan)
    finally:
        _drop_rejects(con)


def _drop_rejects(con: duckdb.DuckDBPyConnection) -> None:
    for name in (_REJECTS, _REJECT_SCANS):
        con.execute(f"drop table if exists temp.{name}").fetchall()


def _keep_unreadable_records(con: duckdb.DuckDBPyConnection, plan: _Plan) -> int:
    """Move the records the reader set aside into raw.unreadable_records and number the
    loaded rows by their record in the file (skipping the unreadable ones). Refuses the
    file when they are its problem rather than a few rows': text that is not UTF-8 (the
    caller may try GB18030), a quote left open over the following lines (every record
    after it was swallowed into one value), or too many of them. Returns their count."""
    # DuckDB's "line" counts records, the header being line 1 (a quoted line break does
    # not count), so the record number is line - 1
    con.execute(
        "create or replace temp table _og_unreadable as "
        "select line - 1 as record, arg_min(error_type, column_idx) as error_type, "
        "arg_min(column_name, column_idx) as column_name, "
        r"regexp_replace(arg_min(error_message, column_idx), '\s+', ' ', 'g') as message, "
        # a CRLF file's record comes with the line break before it
        "trim(any_value(csv_line), chr(13) || chr(10)) as text "
        f"from temp.{_REJECTS} group by line").fetchall()
    try:
        return _check_and_keep(con, plan.path.name, plan.table.name, len(plan.names))
    finally:
        con.execute("drop table if exists temp._og_unreadable").fetchall()


def _check_and_keep(con: duckdb.DuckDBPyConnection, label: str, table: str, fields: int) -> int:
    unreadable = con.execute("select count(*) from _og_unreadable").fetchall()[0][0]
    if not unreadable:
        _number_rows(con, table)
        return 0
    if not_utf8 := _first_unreadable(con, "error_type = 'INVALID ENCODING'"):
        raise _NotUtf8Error(_describe_record(label, *not_utf8))
    # a quote left open inside one line spoils that record; over the line's end, every
    # record after it
    if open_quote := _first_unreadable(con, "error_type = 'UNQUOTED VALUE' and contains(text, chr(10))"):
        raise InputError(f"{_describe_record(label, *open_quote)}: the quote left open "
                         "swallowed the records after it")
    first = _first_unreadable(con)
    total = unreadable + con.execute(f"select count(*) from raw.{table}").fetchall()[0][0]
    at_least = "at least " if unreadable >= MAX_REJECTS_KEPT else ""  # more were not kept
    if at_least or unreadable > max(MAX_UNREADABLE_RECORDS, MAX_UNREADABLE_SHARE * total):
        raise InputError(
            f"{at_least}{unreadable} of {total} records cannot be split into the header's {fields} "
            f"fields, the first: {_describe_record(label, *first)} (exported with another "
            "delimiter, or a header that does not match the rows?)")
    con.execute(
        "insert into raw.unreadable_records select $table, $file, record, column_name, "
        # DuckDB stops counting a record's fields at the first one too many
        "case when error_type = 'TOO MANY COLUMNS' then 'the record has more fields than the "
        "header''s ' || regexp_extract(message, 'Columns: ([0-9]+)', 1) || ' (a comma in a "
        "value that is not quoted?)' "
        "when error_type = 'MISSING COLUMNS' then 'the record has ' "
        "|| regexp_extract(message, 'Found: ([0-9]+)', 1) || ' fields, the header ' "
        "|| regexp_extract(message, 'Columns: ([0-9]+)', 1) || ' (cut short?)' "
        "else 'the record cannot be read as CSV (' || lower(error_type) || ': ' "
        "|| left(message, 200) || ')' end || $unloaded, text "
        "from _og_unreadable order by record",
        {"table": table, "file": label, "unloaded": UNREADABLE_REASON_END}).fetchall()
    # a loaded row's record number is its position among the loaded rows plus the
    # unreadable records before it: the j-th unreadable record (1-based), at record r, has
    # r - j loaded rows before it
    con.execute("create or replace temp table _og_unreadable_before as "
                "select loaded_before, max(unreadable_so_far) as unreadable_so_far from ("
                " select record - row_number() over (order by record) as loaded_before,"
                " row_number() over (order by record) as unreadable_so_far from _og_unreadable"
                ") group by 1").fetchall()
    con.execute(f"update raw.{table} set _row = n.record from ("
                "select r.rowid as loaded_rowid, r.rowid + 1 + coalesce(b.unreadable_so_far, 0) as record "
                f"from (select rowid from raw.{table}) r asof left join _og_unreadable_before b "
                f"on r.rowid + 1 > b.loaded_before) n where raw.{table}.rowid = n.loaded_rowid"
                ).fetchall()
    con.execute("drop table _og_unreadable_before").fetchall()
    # not the record's text: logs outlive the night and it holds personal data
    log.warning("%s: %d record(s) cannot be split into the header's fields; quarantined "
                "(the first at data row %d)", label, unreadable, first[0])
    return int(unreadable)


def _first_unreadable(con: duckdb.DuckDBPyConnection, where: str = "true") -> tuple | None:
    """(record, message, text) of the first record set aside that meets `where` (a fixed
    condition on _og_unreadable's columns), or None."""
    rows = con.execute(f"select record, message, text from _og_unreadable where {where} "
                       "order by record limit 1").fetchall()
    return rows[0] if rows else None


_DIGIT = re.compile(r"\d")  # of any script
_LETTER = re.compile(r"[^\W\d_]")  # of any script: Chinese characters are letters here


def record_shape(text: str, limit: int = 120) -> str:
    """A record's start with its values blotted out, punctuation and spaces as written
    (a digit -> 9, a letter of any script -> x): enough to see a semicolon export or a stray
    quote, nothing of the buyer's name, phone or address for a refusal's message to carry
    into logs, which outlive the night."""
    return "the record's shape starts " + repr(_DIGIT.sub("9", _LETTER.sub("x", text[:limit])))



def _at_line(line: int) -> str:
    """Where a CSV problem is, as the file's line (the header is line 1) and data row."""
    return f" at line {line} (data row {line - 1})"


def _describe_record(label: str, record: int, message: str, text: str) -> str:
    return (f"{label}: cannot read the CSV{_at_line(record + 1)}: "
            f"{' '.join(message.split())[:300]}; {record_shape(text)}")


def _scratch_prefix(con: duckdb.DuckDBPyConnection,
                    scratch_dir: Path | None = None) -> tuple[Path | None, str]:
    """Where a transcoded copy of an export is written: beside the warehouse file (or in
    `scratch_dir` for an in-memory one), never in the shared /tmp (it holds names, phones and
    addresses), named so the next run there can remove what a killed run left."""
    path = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchall()[0][0]
    if path:
        folder, prefix = Path(path).parent, f".{Path(path).name}.ingest-"
    elif scratch_dir is not None:
        folder, prefix = Path(scratch_dir), ".ingest-"
    else:
        return None, "orderguard-ingest-"
    for stale in folder.glob(prefix + "*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    return folder, prefix


def _describe_csv_error(label: str, exc: Exception) -> str:
    message = str(exc)
    where = ""
    line = re.search(r"CSV Error on Line: (\d+)", message)
    if line:
        where = _at_line(int(line.group(1)))
    # "Original Line: <record>\n<reason>"; for a CRLF file DuckDB puts the record on the
    # line after the label, which would otherwise read as the reason
    original = (re.search(r"Original Line:[ \t]*\r?\n([^\n]*)(?=\n[^\n]*\w)", message)
                or re.search(r"Original Line:\s?(.*)", message))
    reason_text = message
    if original:
        reason_text = message[original.end():]
    reason_text = re.split(r"\n\s*(?:Possible (?:fixes|Solution)|file = )", reason_text)[0]
    reason_text = re.sub(r"^[\w ]*Error: ", "", reason_text.strip())
    reason_text = " ".join(reason_text.split())[:300]
    record = f"; {record_shape(original.group(1))}" if original else ""
    return f"{label}: cannot read the CSV{where}: {reason_text}{record}"


def _number_rows(con: duckdb.DuckDBPyConnection, table: str) -> None:
    # Insertion order is file order (preserve_insertion_order), so rowid + 1 = record number.
    con.execute(f"update raw.{table} set _row = rowid + 1").fetchall()


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create_raw_from_parquet(con: duckdb.DuckDBPyConnection, plan: _Plan) -> None:
    label, table = plan.path.name, plan.table.name
    try:
        described = con.execute(
            "describe select * from read_parquet($path)", {"path": str(plan.path)}
        ).fetchall()
    except duckdb.Error as exc:
        reason = " ".join(str(exc).split())[:300]
        raise InputError(f"{label} is not a readable Parquet file: {reason}") from None
    source = [row[0] for row in described]
    plan.names, plan.headers = map_columns(plan.table, source, label), source
    # Identifiers from the file are quoted (never values in SQL text: those are parameters).
    select = ", ".join(
        f"cast({_quote_ident(src)} as varchar) as {_quote_ident(dst)}"
        for src, dst in zip(source, plan.names, strict=True)
    )
    try:
        con.execute(
            f"create or replace table raw.{table} as select {select}, "
            "null::bigint as _row, $file::varchar as _file from read_parquet($path)",
            {"path": str(plan.path), "file": label},
        ).fetchall()
    except duckdb.Error as exc:
        reason = " ".join(str(exc).split())[:300]
        raise InputError(f"{label} cannot be read as Parquet: {reason}") from None
    _number_rows(con, table)
