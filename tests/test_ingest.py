"""ingest.load_raw: files in the input folder become raw.<table>, all VARCHAR, or an
InputError that names the file and the column or line."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import duckdb
import pytest

from orderguard import contract, ingest, warehouse
from orderguard.ingest import InputError, load_raw

CORPUS = Path(__file__).parent / "corpus"
HEADER = "order_id,shop_id,buyer_id,product_id,quantity,amount,created_at,paid_at,status"
ACCOUNTS = "account_id,registered_at\nU1,2026-01-01 10:00:00\nU2,2026-01-02 10:00:00\n"


@pytest.fixture
def con():
    connection = warehouse.connect(":memory:")
    yield connection
    connection.close()


def case(name: str, tmp_path: Path) -> Path:
    """A copy of a corpus case, so a test may add files to it."""
    folder = tmp_path / name
    shutil.copytree(CORPUS / name, folder)
    return folder


def write_inputs(folder: Path, orders: bytes | str, accounts: str = ACCOUNTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = orders.encode() if isinstance(orders, str) else orders
    (folder / "orders.csv").write_bytes(data)
    (folder / "accounts.csv").write_text(accounts, encoding="utf-8")
    return folder


def rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_raw_tables_keep_every_value_as_text_with_row_and_file(con, tmp_path):
    loaded = load_raw(con, case("chinese_headers", tmp_path))
    assert loaded["orders"].rows == 3 and loaded["orders"].encoding == "utf-8"
    types = {t for _, t in rows(con, "select column_name, data_type from information_schema.columns "
                                      "where table_schema = 'raw' and table_name = 'orders' "
                                      "and column_name not in ('_row')")}
    assert types == {"VARCHAR"}
    assert rows(con, "select _row, _file, amount, created_at from raw.orders order by _row")[0] == (
        1, "orders.csv", "99.00", "2026/10/01 12:00")


def test_chinese_headers_map_to_contract_names_and_the_first_alias_wins(con, tmp_path):
    loaded = load_raw(con, case("chinese_headers", tmp_path))
    assert loaded["orders"].columns == [
        "order_id", "shop_id", "buyer_id", "product_id", "quantity", "amount", "订单金额",
        "created_at", "paid_at", "status", "receiver_name", "receiver_phone", "address",
        "tracking_no", "review_rating",
    ]
    # 实付金额 (paid) is the amount; 订单金额 stays as an extra column under its own name
    assert rows(con, "select amount, \"订单金额\" from raw.orders where _row = 1") == [
        ("99.00", "120.00")]
    assert loaded["accounts"].columns == [
        "account_id", "registered_at", "inviter_id", "is_distributor", "phone", "nickname"]
    # the run record says which header became which column
    assert loaded["orders"].renamed["下单时间"] == "created_at"
    assert loaded["accounts"].renamed == {
        "用户ID": "account_id", "注册时间": "registered_at", "邀请人": "inviter_id",
        "是否分销员": "is_distributor", "手机号": "phone", "昵称": "nickname"}


def test_a_bare_word_that_often_heads_other_data_stays_an_extra_column(con, tmp_path):
    """The contract ignores unknown columns: a "Device" column of phone models, a yes/no
    "Refund" or a "Distributor" id must not be read as device_id, refund_amount or
    is_distributor when the file lacks those."""
    folder = write_inputs(
        tmp_path / "in",
        (HEADER + ",Device,Refund,Total\n"
         "O1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid,iPhone 15,no,3\n").encode())
    (folder / "accounts.csv").write_text(
        "account_id,registered_at,Distributor\nU1,2026-01-01 10:00:00,U9\n", "utf-8")
    loaded = load_raw(con, folder)
    assert loaded["orders"].columns[-3:] == ["device", "refund", "total"]
    assert loaded["orders"].renamed == {} and loaded["accounts"].renamed == {}
    assert loaded["accounts"].columns[-1] == "distributor"


def test_renamed_and_cased_headers_match_and_reserved_names_get_a_suffix(con, tmp_path):
    loaded = load_raw(con, case("renamed_columns", tmp_path))
    assert loaded["orders"].columns == [
        "order_id", "shop_id", "buyer_id", "product_id", "quantity", "amount", "created_at",
        "status", "remark", "_row_2", "rowid_2", "column_12",
    ]
    assert rows(con, "select _row, order_id, \"_row_2\" from raw.orders order by _row") == [
        (1, "O1", "x"), (2, "O2", "x")]
    # run.json says which header became which column, spelling variants included
    assert loaded["orders"].renamed == {
        " Order ID ": "order_id", "SHOP_ID": "shop_id", "Buyer-Id": "buyer_id",
        "productid": "product_id", "QTY": "quantity", "金额（元）": "amount",
        "Created_At": "created_at", "Status": "status"}


def test_a_utf8_bom_does_not_end_up_in_the_first_column_name(con, tmp_path):
    loaded = load_raw(con, case("utf8_bom", tmp_path))
    assert loaded["orders"].encoding == "utf-8-sig"
    assert loaded["orders"].columns[0] == "order_id"
    assert rows(con, "select order_id from raw.orders where _row = 1") == [("O1",)]


def test_crlf_line_endings_leave_no_carriage_return_in_values(con, tmp_path):
    load_raw(con, case("crlf", tmp_path))
    assert rows(con, "select status, _row from raw.orders order by _row") == [
        ("paid", 1), ("paid", 2)]
    assert rows(con, "select count(*) from raw.accounts where nickname like '%\r%'") == [(0,)]


def test_quoted_newlines_stay_inside_the_field_and_rows_count_records(con, tmp_path):
    load_raw(con, case("quoted_newlines", tmp_path))
    got = rows(con, "select _row, order_id, address from raw.orders order by _row")
    assert got == [
        (1, "O1", "浙江省杭州市\n西湖区文三路1号"),
        (2, "O2", 'line one\r\nline "two", with comma'),
        (3, "O3", "plain"),
    ]


def test_gbk_file_is_detected_and_transcoded(con, tmp_path):
    text = HEADER + ",address\nO1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,已付款,浙江省杭州市西湖区\n"
    folder = write_inputs(tmp_path / "in", text.encode("gbk"))
    loaded = load_raw(con, folder)
    assert loaded["orders"].encoding == "gb18030"
    assert rows(con, "select status, address from raw.orders") == [("已付款", "浙江省杭州市西湖区")]


# a real order row runs to 300-400 bytes; DuckDB's error then quotes more than the message keeps
LONG_ADDRESS = "浙江省杭州市西湖区文三路100号东方通信大厦" * 8


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf-as-excel-writes"])
def test_gbk_text_after_a_utf8_looking_first_megabyte_falls_back_to_gb18030(con, tmp_path, newline):
    filler = "".join(f"O{i},S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid,Hangzhou Road {i}{newline}"
                     for i in range(30_000))
    text = (HEADER + ",address" + newline + filler
            + f"OX,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,已付款,{LONG_ADDRESS}{newline}")
    assert len(filler) > 1024 * 1024
    loaded = load_raw(con, write_inputs(tmp_path / "in", text.encode("gbk")))
    assert loaded["orders"].encoding == "gb18030"
    assert rows(con, "select _row, status, address from raw.orders where order_id = 'OX'") == [
        (30_001, "已付款", LONG_ADDRESS)]


def test_one_gbk_line_in_a_utf8_file_is_named_by_its_line(con, tmp_path):
    """Neither encoding reads the whole file: the message names the line that is not UTF-8,
    not where GB18030 choked on the UTF-8 text before it."""
    filler = "".join(f"O{i},S1,U1,P1,1,10.00,2026-10-01 12:00:00,,已付款\n" for i in range(30_000))
    data = (HEADER + "\n" + filler).encode() + "OX,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,张三\n".encode("gbk")
    at_line = "orders.csv: cannot read the CSV at line 30002 .*not utf-8"
    with pytest.raises(InputError, match=at_line) as caught:
        load_raw(con, write_inputs(tmp_path / "in", data))
    assert "(line 2)" not in str(caught.value) and "that row is the one to fix" in str(caught.value)


def test_an_unreadable_record_in_a_crlf_file_is_kept_without_its_line_breaks(con, tmp_path):
    text = HEADER + "\r\nO1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid\r\nO2,S1,U1,P1,1,10.00,x,y,z,extra\r\n"
    load_raw(con, write_inputs(tmp_path / "in", text.encode()))
    assert rows(con, "select _row, record from raw.unreadable_records") == [
        (2, "O2,S1,U1,P1,1,10.00,x,y,z,extra")]


def test_a_transcoded_copy_is_written_beside_the_warehouse_and_never_left_behind(tmp_path, monkeypatch):
    """The UTF-8 copy of a GBK export holds names, phones and addresses: it goes beside the
    warehouse (not the shared /tmp), and what a killed run left is removed by the next."""
    text = HEADER + ",address\nO1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,已付款,浙江省杭州市西湖区\n"
    folder = write_inputs(tmp_path / "in", text.encode("gbk"))
    home = tmp_path / "wh"
    home.mkdir()
    killed = home / ".wh.duckdb.ingest-abc123"
    killed.mkdir()
    (killed / "orders.utf8.csv").write_text("left by a killed run", "utf-8")
    other = home / ".other.duckdb.ingest-xyz"  # another warehouse's run, maybe still going
    other.mkdir()
    copies = []
    real = ingest._transcode

    def spy(src, codec, dest):
        copies.append(dest)
        real(src, codec, dest)

    monkeypatch.setattr(ingest, "_transcode", spy)
    with warehouse.connect(home / "wh.duckdb") as con:
        load_raw(con, folder)
    assert [c.parent.parent for c in copies] == [home]
    assert copies[0].parent.name.startswith(".wh.duckdb.ingest-")
    assert sorted(p.name for p in home.iterdir() if "ingest" in p.name) == [".other.duckdb.ingest-xyz"]


def test_an_explicit_encoding_is_honoured(con, tmp_path):
    text = HEADER + "\nO1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,已付款\n"
    loaded = load_raw(con, write_inputs(tmp_path / "in", text.encode("gbk")), encoding="GBK")
    assert loaded["orders"].encoding == "gbk"
    assert rows(con, "select status from raw.orders") == [("已付款",)]
    with pytest.raises(InputError, match="unknown text encoding"):
        load_raw(con, tmp_path / "in", encoding="klingon")


def test_utf16_with_bom_is_read(con, tmp_path):
    text = HEADER + "\nO1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,已付款\n"
    loaded = load_raw(con, write_inputs(tmp_path / "in", text.encode("utf-16")))
    assert loaded["orders"].encoding == "utf-16"
    assert rows(con, "select order_id, status from raw.orders") == [("O1", "已付款")]


def test_wrongly_forced_encoding_is_an_input_error_naming_the_file(con, tmp_path):
    text = HEADER + "\nO1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,已付款\n"
    folder = write_inputs(tmp_path / "in", text.encode("gbk"))
    with pytest.raises(InputError, match=r"orders\.csv.*(not valid|cannot read)"):
        load_raw(con, folder, encoding="utf-8")


def test_missing_required_column_names_file_and_column(con, tmp_path):
    with pytest.raises(InputError, match=r"orders\.csv: missing required column\(s\) amount"):
        load_raw(con, case("missing_column", tmp_path))


def test_missing_required_file_names_it(con, tmp_path):
    with pytest.raises(InputError, match=r"required file accounts\.csv .* is missing"):
        load_raw(con, case("missing_file", tmp_path))


def test_missing_input_folder_is_an_input_error(con, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_raw(con, tmp_path / "nowhere")


def test_csv_and_parquet_for_the_same_table_is_an_input_error(con, tmp_path):
    folder = case("utf8_bom", tmp_path)
    (folder / "Orders.parquet").write_bytes(b"PAR1")
    with pytest.raises(InputError, match=r"Orders\.parquet and orders\.csv"):
        load_raw(con, folder)


def test_an_empty_required_file_is_an_input_error(con, tmp_path):
    with pytest.raises(InputError, match=r"orders\.csv is empty \(0 bytes\)"):
        load_raw(con, case("empty_file", tmp_path))


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\r\n\r\n", b"\xef\xbb\xbf\n"],
                         ids=["0-bytes", "bom-only", "blank-lines", "bom-and-newline"])
def test_an_empty_optional_file_counts_as_absent(con, tmp_path, content):
    """What Excel saves for an empty sheet: only a byte-order mark or blank lines."""
    folder = case("utf8_bom", tmp_path)
    (folder / "products.csv").write_bytes(content)
    loaded = load_raw(con, folder)
    assert "products" not in loaded
    assert rows(con, "select count(*) from raw.products") == [(0,)]


def test_a_required_file_of_blank_lines_names_the_missing_header(con, tmp_path):
    folder = case("utf8_bom", tmp_path)
    (folder / "orders.csv").write_bytes(b"\xef\xbb\xbf\r\n")
    with pytest.raises(InputError, match=r"orders\.csv holds no header row"):
        load_raw(con, folder)


def test_a_header_only_file_gives_zero_rows(con, tmp_path):
    loaded = load_raw(con, case("header_only", tmp_path))
    assert loaded["orders"].rows == 0


def test_an_absent_optional_table_replaces_last_nights_raw_table(con, tmp_path):
    load_raw(con, case("commissions_products", tmp_path))
    assert rows(con, "select count(*) from raw.products") == [(4,)]
    loaded = load_raw(con, case("utf8_bom", tmp_path))
    assert set(loaded) == {"orders", "accounts"}
    for name in ("products", "commissions"):
        assert rows(con, f"select count(*) from raw.{name}") == [(0,)]
        cols = [r[0] for r in rows(con, f"describe raw.{name}")]
        assert cols == [*contract.TABLES[name].column_names, "_row", "_file"]


def test_file_names_match_case_insensitively(con, tmp_path):
    loaded = load_raw(con, case("commissions_products", tmp_path))
    assert Path(loaded["commissions"].file).name == "COMMISSIONS.CSV"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (random.Random(7).randbytes(4096), "not a text CSV file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, "not a text CSV file"),
        (b"PK\x03\x04" + b"\x14\x00" * 40, "Excel workbook"),
        (b"PAR1" + b"\x15\x04" * 40, "holds Parquet data"),
        (bytes([0x81, 0x30, 0xFF, 0xFE, 0x80, 0x80]) * 200, "neither UTF-8 nor GBK"),
    ],
    ids=["random-bytes", "png", "xlsx", "parquet-named-csv", "undecodable"],
)
def test_binary_garbage_is_an_input_error_not_a_traceback(con, tmp_path, content, message):
    folder = write_inputs(tmp_path / "in", content)
    with pytest.raises(InputError, match=message) as info:
        load_raw(con, folder)
    assert "orders.csv" in str(info.value)


def test_a_record_with_too_many_fields_is_kept_aside_and_the_rest_keeps_its_record_numbers(con, tmp_path):
    """One address with a stray comma must not stop the night: the record goes to
    raw.unreadable_records with its record number and text, and the rows after it keep
    theirs (a quoted line break before it counts as one record, not two lines)."""
    text = (HEADER + "\n" + 'O1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,"paid"\n'
            'O2,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,"pa\nid"\n'
            "O3,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid,上海市,浦东新区\n"
            "O4,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid\n"
            "O5,S1,U1,P1\n"
            "O6,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid\n")
    loaded = load_raw(con, write_inputs(tmp_path / "in", text))
    assert (loaded["orders"].rows, loaded["orders"].unreadable) == (4, 2)
    assert rows(con, "select _row, order_id from raw.orders order by _row") == [
        (1, "O1"), (2, "O2"), (4, "O4"), (6, "O6")]
    assert rows(con, "select table_name, _file, _row, reason, record from raw.unreadable_records "
                     "order by _row") == [
        ("orders", "orders.csv", 3, "the record has more fields than the header's 9 (a comma "
         "in a value that is not quoted?); nothing of it was loaded",
         "O3,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid,上海市,浦东新区"),
        ("orders", "orders.csv", 5, "the record has 4 fields, the header 9 (cut short?); "
         "nothing of it was loaded", "O5,S1,U1,P1")]


def test_the_next_load_forgets_last_nights_unreadable_records(con, tmp_path):
    broken = HEADER + "\nO1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid,extra\n"
    load_raw(con, write_inputs(tmp_path / "a", broken))
    load_raw(con, write_inputs(tmp_path / "b", HEADER + "\nO1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid\n"))
    assert rows(con, "select count(*) from raw.unreadable_records") == [(0,)]


def test_a_file_of_mostly_unreadable_records_is_refused_naming_the_first(con, tmp_path):
    """A semicolon export or a header from another file breaks every record: that is the
    file's problem, not thousands of rows' to quarantine. The message shows the record's
    shape (the semicolons), not its values: it reaches the terminal and the flow's log."""
    good = [f"O{i},S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid" for i in range(100)]
    bad = [f"B{i};S1;U1;P1;1;10.00;2026-10-01 12:00:00;;张三 13800001234"
           for i in range(ingest.MAX_UNREADABLE_RECORDS + 1)]
    first = (r"orders\.csv: cannot read the CSV at line 102 \(data row 101\).*"
             r"the record's shape starts 'x9;x9;x9;x9;9;99\.99;9999-99-99 99:99:99;;xx 99999999999'")
    with pytest.raises(InputError, match=first) as caught:
        load_raw(con, write_inputs(tmp_path / "in", "\n".join([HEADER, *good, *bad]) + "\n"))
    assert str(caught.value).startswith("11 of 111 records cannot be split into the header's 9 fields")
    assert not [value for value in ("B0", "张", "138") if value in str(caught.value)]


def test_a_file_broken_past_what_the_reader_keeps_aside_is_refused(con, tmp_path, monkeypatch):
    """Records the reader skipped without keeping them would be lost without a word."""
    monkeypatch.setattr(ingest, "_CSV_OPTIONS", ingest._CSV_OPTIONS.replace(
        f"rejects_limit = {ingest.MAX_REJECTS_KEPT}", "rejects_limit = 3"))
    monkeypatch.setattr(ingest, "MAX_REJECTS_KEPT", 3)
    monkeypatch.setattr(ingest, "MAX_UNREADABLE_SHARE", 0.5)
    good = [f"O{i},S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid" for i in range(100)]
    bad = [f"B{i},S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid,extra" for i in range(5)]
    with pytest.raises(InputError, match=r"^at least 3 of 103 records cannot be split"):
        load_raw(con, write_inputs(tmp_path / "in", "\n".join([HEADER, *good, *bad]) + "\n"))


def test_a_quote_left_open_over_the_next_records_is_an_input_error(con, tmp_path):
    """Every record after it was read into one value: quarantining that one record would
    lose the rest of the night without a word."""
    folder = write_inputs(tmp_path / "in", HEADER + '\nO1,S1,U1,P1,1,"10.00,2026,,paid\n'
                          "O2,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid\n"
                          "O3,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid\n")
    with pytest.raises(InputError, match=r"orders\.csv: cannot read the CSV at line 2 \(data row 1\)"
                                         r".*the quote left open swallowed the records after it"):
        load_raw(con, folder)


def test_a_blank_first_line_is_not_a_header(con, tmp_path):
    folder = write_inputs(tmp_path / "in", "\n" + HEADER + "\n")
    with pytest.raises(InputError, match=r"orders\.csv: the first line is not a header"):
        load_raw(con, folder)


def test_a_10_mb_field_loads_intact(con, tmp_path):
    big = "浙" * (10 * 1024 * 1024 // 3 + 1)  # a little over 10 MB of UTF-8
    text = (HEADER + ",address\n"
            f"O1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,paid,\"{big}\"\n"
            "O2,S1,U2,P1,1,10.00,2026-10-01 12:00:00,,paid,short\n")
    load_raw(con, write_inputs(tmp_path / "in", text))
    assert rows(con, "select _row, strlen(address) from raw.orders order by _row") == [
        (1, len(big.encode())), (2, 5)]


def test_parquet_input_is_cast_to_text_and_mapped(con, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "accounts.csv").write_text(ACCOUNTS)
    duckdb.sql(
        "copy (select 'O' || i as \"订单号\", 'S1' as shop_id, 'U1' as buyer_id, 'P1' as product_id, "
        "i::integer as quantity, 9.5::decimal(18,2) as amount, "
        "timestamp '2026-10-01 12:00:00' as created_at, 'paid' as status, "
        "'x' as \"weird\"\"; drop table raw.orders; --\" from range(1, 4) t(i)) "
        f"to '{folder / 'orders.parquet'}' (format parquet)"
    )
    loaded = load_raw(con, folder)
    assert loaded["orders"].encoding == "parquet"
    assert loaded["orders"].columns[:3] == ["order_id", "shop_id", "buyer_id"]
    assert loaded["orders"].columns[-1] == 'weird"; drop table raw.orders; --'
    assert rows(con, "select _row, order_id, quantity, amount, created_at from raw.orders "
                     "order by _row")[0] == (1, "O1", "1", "9.50", "2026-10-01 12:00:00")


def test_a_broken_parquet_file_is_an_input_error(con, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "accounts.csv").write_text(ACCOUNTS)
    (folder / "orders.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(InputError, match=r"orders\.parquet is not a readable Parquet file"):
        load_raw(con, folder)


def test_row_numbers_follow_the_file_in_a_multithreaded_read(con, tmp_path):
    """raw._row = rowid + 1 relies on insertion order surviving a parallel read."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "accounts.csv").write_text(ACCOUNTS)
    duckdb.sql(
        "copy (select 'O' || i as order_id, 'S' || (i % 7) as shop_id, 'U1' as buyer_id, "
        "'P1' as product_id, '1' as quantity, '10.00' as amount, "
        "'2026-10-01 12:00:00' as created_at, 'paid' as status, "
        "repeat('地址', 1 + i % 40) as address from range(1, 400001) t(i)) "
        f"to '{folder / 'orders.csv'}' (header, delimiter ',')"
    )
    con.execute("set threads = 4").fetchall()
    load_raw(con, folder)
    assert rows(con, "select count(*), count(*) filter (where _row = substr(order_id, 2)::bigint) "
                     "from raw.orders") == [(400_000, 400_000)]


def test_alias_table_names_only_contract_columns():
    for table, aliases in ingest.COLUMN_ALIASES.items():
        assert set(aliases) <= set(contract.TABLES[table].column_names), table


def test_an_in_memory_load_given_a_scratch_folder_transcodes_there(con, tmp_path, monkeypatch):
    """A partition is validated in memory: its GBK copy goes to the partition's own folder."""
    text = HEADER + ",address\nO1,S1,U1,P1,1,10.00,2026-10-01 12:00:00,,已付款,浙江省杭州市西湖区\n"
    folder = write_inputs(tmp_path / "in", text.encode("gbk"))
    scratch = tmp_path / "partition-out"
    scratch.mkdir()
    copies = []
    real = ingest._transcode
    monkeypatch.setattr(ingest, "_transcode", lambda src, codec, dest: (copies.append(dest),
                                                                        real(src, codec, dest)))
    load_raw(con, folder, scratch_dir=scratch)
    assert [c.parent.parent for c in copies] == [scratch] and not list(scratch.iterdir())
