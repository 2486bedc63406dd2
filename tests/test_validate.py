"""validate.stage: raw -> typed staging tables, every rejected row in ops.quarantine with
its row number, first failing column and the reasons; read = accepted + quarantined."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderguard import contract, history, ingest, validate, warehouse
from orderguard.ingest import InputError, load_raw
from orderguard.validate import stage

CORPUS = Path(__file__).parent / "corpus"
DUCK_TYPES = {"string": "VARCHAR", "int": "INTEGER", "decimal": "DECIMAL(18,2)",
              "timestamp": "TIMESTAMP", "bool": "BOOLEAN", "enum": "VARCHAR"}


@pytest.fixture
def con():
    connection = warehouse.connect(":memory:")
    yield connection
    connection.close()


def run(con, folder: Path, run_id: str = "run-1", known: str | None = None):
    load_raw(con, folder)
    return stage(con, run_id, known)


def quarantine(con, run_id: str = "run-1") -> list[tuple]:
    return con.execute(
        "select table_name, row_number, column_name, value, reason from ops.quarantine "
        "where run_id = $run_id order by table_name, row_number", {"run_id": run_id}
    ).fetchall()


def staged(con, table: str, columns: str) -> list[tuple]:
    return con.execute(f"select {columns} from staging.{table} order by _row").fetchall()


def assert_every_row_accounted_for(con, result) -> None:
    for name in contract.TABLES:
        counts = result.counts[name]
        assert counts["read"] == counts["accepted"] + counts["quarantined"], name
        read = con.execute(f"select count(*) from raw.{name}").fetchall()[0][0] + con.execute(
            "select count(*) from raw.unreadable_records where table_name = $name",
            {"name": name}).fetchall()[0][0]
        accounted = con.execute(
            f"select count(*), count(distinct _row), coalesce(min(_row), 1), "
            f"coalesce(max(_row), 0) from (select _row from staging.{name} union all "
            "select row_number from ops.quarantine where table_name = $name "
            "and run_id = 'run-1')", {"name": name},
        ).fetchall()[0]
        assert accounted == (read, read, 1, read), name


LOADABLE_CASES = [
    "utf8_bom", "crlf", "quoted_newlines", "chinese_headers", "renamed_columns",
    "money_formats", "date_formats", "duplicate_order", "dangling_buyer", "header_only",
    "injection", "bad_values", "commissions_products", "malformed_row",
]


@pytest.mark.parametrize("name", LOADABLE_CASES)
def test_every_corpus_row_is_accepted_or_quarantined_exactly_once(con, name):
    result = run(con, CORPUS / name)
    assert_every_row_accounted_for(con, result)


@pytest.mark.parametrize("name", ["empty_file", "missing_column", "missing_file"])
def test_structurally_broken_corpus_cases_are_input_errors(con, name):
    with pytest.raises(InputError, match=r"orders\.csv|accounts\.csv"):
        run(con, CORPUS / name)


def test_staging_tables_have_contract_columns_and_types_even_when_absent(con):
    run(con, CORPUS / "header_only")
    for table in contract.TABLES.values():
        got = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'staging' and table_name = $name order by ordinal_position",
            {"name": table.name},
        ).fetchall()
        want = [(c.name, DUCK_TYPES[c.type]) for c in table.columns]
        assert got == [*want, ("_row", "BIGINT"), ("_file", "VARCHAR")], table.name
        # working tables go, except orders_checked: staging.orders is a view on it until the
        # history merge takes tonight's orders in (history.use_window drops it)
        assert warehouse.table_exists(con, "staging", f"{table.name}_checked") == (table.name == "orders")


def test_padding_is_trimmed_and_nothing_else(con):
    """Spaces, tabs, ideographic and no-break spaces around a value go; the letters and
    digits at its ends stay, whatever they are (u, a, 0 and 3 were once eaten as well)."""
    body = [["O1", " S0a\t", "\u3000U3a\u00a0", "P1", " 3000 ", "10.00",
             "2026-10-01 12:00:00", "", "paid", "\u3000上海市0a\u3000"]]
    accounts = [["U3a", "2026-01-01", "", "0", "ann"]]
    con, _ = load_and_stage(to_csv(ORDER_HEADER, body), to_csv(ACCOUNT_HEADER, accounts))
    with con:
        assert staged(con, "orders", "shop_id, buyer_id, quantity, address") == [
            ("S0a", "U3a", 3000, "上海市0a")]


def test_chinese_statuses_and_headers_become_contract_values(con):
    run(con, CORPUS / "chinese_headers")
    assert staged(con, "orders", "order_id, status, amount, paid_at, receiver_phone") == [
        ("O1", "paid", Decimal("99.00"), datetime(2026, 10, 1, 12, 0, 30), "+86 138-0000-0001"),
        ("O2", "created", Decimal("50.00"), None, "13800000002"),
        ("O3", "completed", Decimal("30.00"), datetime(2026, 10, 1, 9, 1), "13800000003"),
    ]
    assert staged(con, "accounts", "account_id, is_distributor, registered_at") == [
        ("U1", False, datetime(2026, 1, 1, 10, 0)),
        ("U2", True, datetime(2026, 2, 1, 10, 0)),
        ("U3", False, datetime(2026, 3, 1)),
    ]


def test_cased_status_values_are_lower_cased(con):
    run(con, CORPUS / "renamed_columns")
    assert staged(con, "orders", "status") == [("paid",), ("shipped",)]


def test_money_with_currency_signs_and_thousands_commas_parses(con):
    run(con, CORPUS / "money_formats")
    assert staged(con, "orders", "order_id, amount") == [
        ("O1", Decimal("1234.50")), ("O2", Decimal("99.00")), ("O3", Decimal("100.00")),
        ("O4", Decimal("88.00")), ("O5", Decimal("12345678.90")),
    ]
    assert quarantine(con) == [
        ("orders", 6, "amount", "12,50", "amount '12,50' is not an amount of money"),
        ("orders", 7, "amount", "¥abc", "amount '¥abc' is not an amount of money"),
    ]


def test_timestamps_in_every_supported_format_become_shanghai_wall_time(con):
    run(con, CORPUS / "date_formats")
    noon = datetime(2026, 10, 1, 12, 0)
    assert staged(con, "orders", "order_id, created_at, paid_at") == [
        ("O1", noon, datetime(2026, 10, 1, 12, 0, 30)),
        ("O2", noon, datetime(2026, 10, 1, 12, 0, 3)),
        ("O3", datetime(2026, 10, 1), None),
        ("O4", noon, noon),  # Excel serial 46296.5
        ("O5", noon, noon),  # 04:00Z and 12:00+08:00
        ("O6", noon, None),  # 2026年10月1日 12:00
        ("O7", datetime(2026, 10, 1, 12, 0, 0, 250000), None),
    ]
    assert [(r[1], r[2]) for r in quarantine(con)] == [(8, "created_at"), (9, "created_at")]


def test_impossible_values_are_quarantined_with_every_reason(con):
    run(con, CORPUS / "bad_values")
    assert staged(con, "orders", "order_id") == [("O1",)]
    got = {row[1]: row[2:] for row in quarantine(con)}
    assert got[2] == ("quantity", "0", "quantity 0 is less than 1")
    assert got[3] == ("amount", "-5.00", "amount -5.00 is less than 0")
    assert got[4][0] == "paid_at" and "more than a minute before created_at" in got[4][2]
    assert got[5] == ("refund_amount", "20.00", "refund_amount 20.00 is more than amount 10.00")
    assert got[6] == ("review_rating", "7", "review_rating 7 is more than 5")
    assert got[7][0] == "created_at" and got[7][2].endswith("is before 2000")
    assert got[8][0] == "shipped_at" and "more than a day after the latest order" in got[8][2]
    assert got[9][0] == "status" and "'teleported' is not one of created, paid" in got[9][2]
    assert got[10] == ("shop_id", None, "shop_id is missing; quantity 'two' is not a whole "
                       "number; amount 'ten' is not an amount of money; created_at "
                       "'yesterday' is not a date and time; status is missing")
    assert got[11] == ("quantity", "1.5", "quantity '1.5' is not a whole number")
    # one garbage far-future order does not move the clock for the others
    assert got[12][0] == "created_at" and "more than a day after" in got[12][2]


def test_a_record_with_a_stray_comma_is_quarantined_and_the_night_goes_on(con):
    result = run(con, CORPUS / "malformed_row")
    assert staged(con, "orders", "order_id") == [("O1",)]
    assert quarantine(con) == [(
        "orders", 2, None, "O2,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid,surplus",
        "the record has more fields than the header's 9 (a comma in a value that is not "
        "quoted?); nothing of it was loaded")]
    assert result.counts["orders"] == {"read": 2, "accepted": 1, "quarantined": 1}


def test_duplicate_orders_keep_the_first_and_name_it(con):
    run(con, CORPUS / "duplicate_order")
    assert staged(con, "orders", "order_id, buyer_id") == [("O1", "U1"), ("O2", "U2")]
    reason = "order_id 'O1' repeats row 1 (only the first occurrence is used, even when it is rejected)"
    assert quarantine(con) == [("orders", 3, "order_id", "O1", reason),
                               ("orders", 4, "order_id", "O1", reason)]


def test_orders_of_unknown_buyers_are_quarantined(con):
    run(con, CORPUS / "dangling_buyer")
    assert staged(con, "orders", "order_id") == [("O1",)]
    assert [(r[1], r[2], r[3]) for r in quarantine(con)] == [
        (2, "buyer_id", "U404"), (3, "buyer_id", "U_OLD")]


def test_buyers_known_from_earlier_nights_are_accepted(con):
    con.execute("create table ops.known_accounts as select 'U_OLD' as account_id").fetchall()
    run(con, CORPUS / "dangling_buyer", known="ops.known_accounts")
    assert staged(con, "orders", "order_id") == [("O1",), ("O3",)]
    assert [r[1] for r in quarantine(con)] == [2]


def test_a_known_accounts_table_that_does_not_exist_yet_is_fine(con):
    result = run(con, CORPUS / "dangling_buyer", known="ops.known_accounts")
    assert result.counts["orders"] == {"read": 3, "accepted": 1, "quarantined": 2}
    with pytest.raises(ValueError, match="not a safe table name"):
        stage(con, "run-1", "ops.x; drop table raw.orders")


def test_extra_columns_named_like_sql_internals_are_ignored(con, tmp_path):
    header = "order_id,shop_id,buyer_id,product_id,quantity,amount,created_at,status"
    extras = ",t,_text,_reason,as_of,first_row,b,d,p,c"
    (tmp_path / "orders.csv").write_text(
        f"{header}{extras}\nO1,S1,U1,P1,1,1,2026-10-01,paid,1,2,3,4,5,6,7,8,9\n"
        f"O2,S1,U1,P1,0,1,2026-10-01,paid,1,2,3,4,5,6,7,8,9\n")
    (tmp_path / "accounts.csv").write_text("account_id,registered_at\nU1,2026-01-01\n")
    result = run(con, tmp_path)
    assert result.counts["orders"] == {"read": 2, "accepted": 1, "quarantined": 1}
    assert quarantine(con) == [("orders", 2, "quantity", "0", "quantity 0 is less than 1")]


def test_formula_and_script_text_passes_through_as_data(con):
    run(con, CORPUS / "injection")
    assert staged(con, "orders", "receiver_name, address, device_id") == [
        ('=HYPERLINK("http://evil.example","click")', "<script>alert(1)</script>",
         "+cmd|' /C calc'!A0"),
        ("-1+1", "@SUM(1+1)*cmd|' /C calc'!A0", "<img src=x onerror=alert(1)>"),
        ("'; drop table raw.orders; --", '"quoted" \u202eevil', "=1+2"),
    ]
    assert staged(con, "accounts", "nickname") == [
        ("=cmd|' /C calc'!A0",), ("<b>bold</b>",), ("@me",)]
    assert quarantine(con) == []


def test_products_and_commissions_are_typed_and_checked(con):
    result = run(con, CORPUS / "commissions_products")
    assert staged(con, "products", "product_id, price, is_virtual") == [
        ("P1", Decimal("100.00"), True), ("P2", Decimal("1050.00"), False)]
    assert staged(con, "commissions", "order_id, level, amount, status, settled_at") == [
        ("O1", 1, Decimal("8.00"), "settled", datetime(2026, 10, 2)),
        ("O1", 2, Decimal("4.00"), "pending", None),
    ]
    assert [(r[0], r[1], r[2]) for r in quarantine(con)] == [
        ("commissions", 3, "order_id"), ("commissions", 4, "order_id"),
        ("commissions", 5, "level"), ("products", 3, "product_id"), ("products", 4, "price"),
    ]
    assert "is not an accepted order" in quarantine(con)[1][4]
    assert result.counts["commissions"] == {"read": 5, "accepted": 2, "quarantined": 3}


def test_rerunning_a_run_id_replaces_its_quarantine_rows(con):
    run(con, CORPUS / "money_formats", run_id="night-1")
    run(con, CORPUS / "money_formats", run_id="night-1")
    run(con, CORPUS / "duplicate_order", run_id="night-2")
    counts = con.execute("select run_id, count(*) from ops.quarantine group by all "
                         "order by all").fetchall()
    assert counts == [("night-1", 2), ("night-2", 2)]


def test_a_10_mb_field_is_quarantined_as_too_long_with_a_short_value(con, tmp_path):
    big = "x" * (10 * 1024 * 1024)
    header = ("order_id,shop_id,buyer_id,product_id,quantity,amount,created_at,status,"
              "address\n")
    (tmp_path / "orders.csv").write_text(
        header + f"O1,S1,U1,P1,1,1,2026-10-01,paid,\"{big}\"\nO2,S1,U1,P1,1,1,2026-10-01,paid,ok\n")
    (tmp_path / "accounts.csv").write_text("account_id,registered_at\nU1,2026-01-01\n")
    result = run(con, tmp_path)
    assert result.counts["orders"] == {"read": 2, "accepted": 1, "quarantined": 1}
    [(table, row, column, value, reason)] = quarantine(con)
    assert (row, column, len(value)) == (1, "address", 200)
    assert reason == f"address is {len(big)} characters long (limit {validate.MAX_TEXT_LENGTH})"


# Property tests: random text anywhere in a small input ----------------------------------

ORDER_ROWS = [
    ["O1", "S1", "U1", "P1", "1", "10.00", "2026-10-01 12:00:00", "", "paid", "addr 1"],
    ["O2", "S1", "U2", "P2", "2", "¥1,000", "2026/10/1 13:00", "", "已付款", "addr 2"],
    ["O3", "S2", "U1", "P1", "1", "5", "46296.5", "2026-10-01T12:01:00+08:00", "shipped", ""],
]
ORDER_HEADER = ["order_id", "shop_id", "buyer_id", "product_id", "quantity", "amount",
                "created_at", "paid_at", "status", "address"]
ACCOUNT_ROWS = [["U1", "2026-01-01", "", "是", "alice"], ["U2", "2026-02-01", "U1", "0", "bob"]]
ACCOUNT_HEADER = ["account_id", "registered_at", "inviter_id", "is_distributor", "nickname"]

any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
tricky_text = st.one_of(
    any_text,
    st.sampled_from(["", " ", "\r", "\n", "\r\n", '"', '""', ",", "\ufeff", "\x00", "NULL",
                     "=1+1", "-0", "1e999", "99999", "9999999999999", "2026-02-30",
                     "2026-10-01 12:00+14:00", "9999-12-31 23:59:59-14:00", "¥", "元",
                     "0001-01-01", "\u3000", "P1\u00a0", "U1 "]),
)


def to_csv(header: list[str], body: list[list[str]]) -> str:
    out = io.StringIO()
    # CRLF like Excel: csv.writer then quotes any field holding \r or \n
    csv.writer(out, lineterminator="\r\n").writerows([header, *body])
    return out.getvalue()


def load_and_stage(orders: str | bytes, accounts: str | bytes):
    """Load + stage in a fresh warehouse; returns (connection, result) or raises InputError."""
    with tempfile.TemporaryDirectory() as folder:
        for name, text in (("orders.csv", orders), ("accounts.csv", accounts)):
            data = text.encode("utf-8") if isinstance(text, str) else text
            (Path(folder) / name).write_bytes(data)
        con = warehouse.connect(":memory:")
        try:
            load_raw(con, Path(folder))
            return con, stage(con, "run-1")
        except BaseException:
            con.close()
            raise


@settings(derandomize=True, max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    table=st.sampled_from(["orders", "accounts"]),
    row=st.integers(min_value=-1, max_value=2),  # -1 = the header
    column=st.integers(min_value=0, max_value=9),
    value=tricky_text,
)
def test_random_text_in_any_quoted_field_never_loses_a_row(table, row, column, value):
    orders = [list(r) for r in ORDER_ROWS]
    accounts = [list(r) for r in ACCOUNT_ROWS]
    order_header, account_header = list(ORDER_HEADER), list(ACCOUNT_HEADER)
    header, body = (order_header, orders) if table == "orders" else (account_header, accounts)
    in_header = row == -1 or row >= len(body)
    target = header if in_header else body[row]
    target[column % len(target)] = value
    try:
        con, result = load_and_stage(to_csv(order_header, orders),
                                     to_csv(account_header, accounts))
    except InputError as exc:
        # only structural problems: a header that no longer names a required column, a NUL
        # byte, a blank first line
        assert in_header or "\x00" in value, exc
        return
    try:
        assert_every_row_accounted_for(con, result)
        assert result.counts["orders"]["read"] == 3 and result.counts["accounts"]["read"] == 2
    finally:
        con.close()


@settings(derandomize=True, max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(min_value=0, max_value=10_000), junk=any_text)
def test_random_text_spliced_into_the_raw_file_is_loaded_or_an_input_error(position, junk):
    orders = to_csv(ORDER_HEADER, ORDER_ROWS)
    at = position % (len(orders) + 1)
    spliced = orders[:at] + junk + orders[at:]
    try:
        con, result = load_and_stage(spliced, to_csv(ACCOUNT_HEADER, ACCOUNT_ROWS))
    except InputError as exc:
        assert "orders.csv" in str(exc)
        return
    try:
        assert_every_row_accounted_for(con, result)
    finally:
        con.close()


def test_macros_file_is_not_a_model():
    assert "_macros" not in validate._MODELS
    assert ingest.MAX_LINE_BYTES >= 10 * 1024 * 1024


def test_first_night_history_made_in_place_equals_the_copied_history():
    """The first night turns the staged tables into their histories in place; each must hold
    exactly what the copying path (every later night) would have written."""
    histories = []
    for in_place in (True, False):
        with warehouse.connect(":memory:") as con:
            run(con, CORPUS / "duplicate_order")
            if not in_place:  # empty histories already there: the copying path runs
                for table in history.HISTORY_KEYS:
                    con.execute(f"create table staging.{table}_history as "
                                f"select *, ''::varchar as _night from staging.{table} limit 0")
            history.merge_night(con, "2026-11-30")
            histories.append({
                table: (con.execute(f"describe staging.{table}_history").fetchall(),
                        con.execute(f"select * from staging.{table}_history order by all").fetchall())
                for table in history.HISTORY_KEYS})
            assert warehouse.table_exists(con, "staging", "orders_checked") != in_place
    assert histories[0] == histories[1]
    columns, rows = histories[0]["orders"]
    assert [r[0] for r in rows] == ["O1", "O2"]  # the repeats stayed in quarantine
    assert columns[-1][0] == "_night" and all(r[-1] == "2026-11-30" for r in rows)
    assert not any(c[0] in ("_reason", "_column", "_value") for c in columns)
    assert [r[0] for r in histories[0]["accounts"][1]] == ["U1", "U2", "U3"]


def test_a_later_nights_commission_line_for_a_level_replaces_the_earlier_one():
    """One commission per order and level, as validation checks a single export: a line
    re-sent with a corrected beneficiary replaces the old one instead of paying twice."""
    with warehouse.connect(":memory:") as con:
        con.execute("create table staging.commissions (order_id varchar, beneficiary_id varchar, "
                    "level integer, amount decimal(18,2))")
        for night, beneficiary in (("2026-11-29", "D1"), ("2026-11-30", "D2")):
            con.execute("delete from staging.commissions")
            con.execute("insert into staging.commissions values ('O1', $b, 1, 414.00), "
                        "('O1', 'D9', 2, 20.00)", {"b": beneficiary})
            history._upsert_night(con, "commissions", history.HISTORY_KEYS["commissions"], night)
        rows = con.execute("select order_id, level, beneficiary_id, amount, _night "
                           "from staging.commissions_history order by level").fetchall()
    assert rows == [("O1", 1, "D2", Decimal("414.00"), "2026-11-30"),
                    ("O1", 2, "D9", Decimal("20.00"), "2026-11-30")]


USUAL_TIMESTAMP = st.builds(
    lambda when, sep: when.strftime(f"%Y-%m-%d{sep}%H:%M:%S"),
    st.datetimes(datetime(1000, 1, 1), datetime(2999, 12, 31)), st.sampled_from(" T"))
# the usual shape with a few characters swapped: the values where the two paths could part
NEAR_USUAL_TIMESTAMP = st.builds(
    lambda text, swaps: "".join(dict(swaps).get(i, c) for i, c in enumerate(text)),
    USUAL_TIMESTAMP,
    st.lists(st.tuples(st.integers(0, 18), st.sampled_from("0123456789-: T/+.Z年")), max_size=3))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.lists(NEAR_USUAL_TIMESTAMP, min_size=1, max_size=30))
def test_the_fast_timestamp_path_reads_what_the_regular_expressions_read(values):
    # stg_ts sends the usual 2026-10-01 12:00:00 shape straight to the cast; stg_ts_any, the
    # regular expressions every other shape goes through, must read every value the same
    with warehouse.connect(":memory:") as connection:
        validate._create_macros(connection)
        got = connection.execute(
            "select s from unnest($v::varchar[]) t(s) where stg_ts(s) is distinct from stg_ts_any(s)",
            {"v": values}).fetchall()
    assert got == []


@pytest.mark.parametrize("bad_row", [2, 40_000], ids=["first-megabyte", "far-down"])
def test_a_stray_nul_in_a_value_quarantines_its_row_wherever_it_is(con, tmp_path, bad_row):
    """A NUL byte inside one value is that row's problem, named by row and column, in the
    first megabyte (where the file is sniffed) as much as further down."""
    header = "order_id,shop_id,buyer_id,product_id,quantity,amount,created_at,status,receiver_name\n"
    nul_name = "张\x00三"
    lines = [f"O{i},S1,U1,P1,1,10.00,2026-10-01 12:00:00,paid,{nul_name if i == bad_row else '李四'}\n"
             for i in range(1, 40_001)]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "orders.csv").write_text(header + "".join(lines), "utf-8")
    (folder / "accounts.csv").write_text("account_id,registered_at\nU1,2026-01-01 10:00:00\n", "utf-8")
    result = run(con, folder)
    assert result.counts["orders"] == {"read": 40_000, "accepted": 39_999, "quarantined": 1}
    [(table, row, column, _, reason)] = quarantine(con)
    assert (table, row, column) == ("orders", bad_row, "receiver_name")
    assert "NUL" in reason
