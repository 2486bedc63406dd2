"""Benchmark: ingest.load_raw + validate.stage on a generated orders CSV.

    .venv/bin/python benchmarks/bench_ingest.py --rows 2000000 [--gbk] [--keep DIR]

Writes orders.csv (all 24 contract columns, ~245 bytes a row) and accounts.csv into a
temporary folder with DuckDB, loads them into a fresh warehouse file and prints seconds per
step. It also checks that raw._row is the file's record number (order_id O<n> sits on data
row n) after DuckDB's multi-threaded read: the claim ingest.py relies on.
"""

from __future__ import annotations

import argparse
import codecs
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from orderguard import ingest, validate, warehouse

ORDERS_SQL = """
copy (
    select
        'O' || lpad(i::varchar, 10, '0') as order_id,
        'S' || (i % 500) as shop_id,
        'U' || (hash(i) % $accounts) as buyer_id,
        'P' || (hash(i * 7) % 5000) as product_id,
        (1 + i % 3)::varchar as quantity,
        case when i % 7 = 0 then '￥' || printf('%,.2f', 1000 + hash(i * 3) % 100000 / 100.0)
             else round(10 + hash(i * 3) % 100000 / 100.0, 2)::varchar end as amount,
        strftime(timestamp '2026-10-01' + to_seconds(i % 86400), '%Y-%m-%d %H:%M:%S')
            as created_at,
        case when i % 5 = 0
             then strftime(timestamp '2026-10-01' + to_seconds(i % 86400 + 30), '%Y/%m/%d %H:%M')
             else strftime(timestamp '2026-10-01' + to_seconds(i % 86400 + 30), '%Y-%m-%dT%H:%M:%S')
        end as paid_at,
        case when i % 10 = 0 then 'refunded' when i % 10 = 1 then '已发货' else 'paid' end
            as status,
        case when i % 10 = 0 then '2026-10-02 09:00:00' end as refunded_at,
        case when i % 10 = 0 then '5.00' end as refund_amount,
        case when i % 4 = 0 then 'U' || (hash(i * 11) % $accounts) end as referrer_id,
        'D' || (hash(i * 13) % 200000) as device_id,
        '10.' || (i % 256) || '.' || (i * 7 % 256) || '.' || (i * 3 % 256) as ip,
        '张三' || (i % 1000) as receiver_name,
        '138' || lpad((hash(i * 17) % 100000000)::varchar, 8, '0') as receiver_phone,
        '浙江省杭州市西湖区文三路' || (i % 9999) || '号' || (i % 30) || '栋' as address,
        md5((hash(i) % $accounts)::varchar)[:16] as payment_account,
        '顺丰' as carrier,
        'SF' || lpad((i * 31 % 1000000000)::varchar, 12, '0') as tracking_no,
        strftime(timestamp '2026-10-01 12:00:00' + to_seconds(i % 86400), '%Y-%m-%d %H:%M:%S')
            as shipped_at,
        case when i % 3 = 0 then (46296 + (i % 86400) / 86400.0 + 1)::varchar end
            as delivered_at,
        case when i % 5 = 0 then (1 + i % 5)::varchar end as review_rating,
        null as reviewed_at
    from range(1, $rows + 1) t(i)
) to '{path}' (header, delimiter ',')
"""

ACCOUNTS_SQL = """
copy (
    select 'U' || i as account_id,
        strftime(timestamp '2026-01-01' + to_seconds(i % 20000000), '%Y-%m-%d %H:%M:%S')
            as registered_at,
        case when i % 3 = 0 then 'U' || (i // 3) end as inviter_id,
        case when i % 20 = 0 then '是' else '否' end as is_distributor,
        '139' || lpad(i::varchar, 8, '0') as phone,
        'D' || (i % 200000) as device_id, '10.0.' || (i % 256) || '.1' as ip,
        '用户' || i as nickname
    from range(0, $accounts) t(i)
) to '{path}' (header, delimiter ',')
"""


def generate(folder: Path, rows: int, accounts: int) -> None:
    con = duckdb.connect()
    # Paths cannot be parameters of COPY ... TO; they are ours, not input data.
    params = {"rows": rows, "accounts": accounts}
    con.execute(ORDERS_SQL.format(path=folder / "orders.csv"), params).fetchall()
    con.execute(ACCOUNTS_SQL.format(path=folder / "accounts.csv"),
                {"accounts": accounts}).fetchall()
    con.close()


def to_gbk(path: Path) -> None:
    tmp = path.with_suffix(".gbk")
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as fin, tmp.open("wb") as fout:
        while chunk := fin.read(1 << 24):
            fout.write(decoder.decode(chunk).encode("gbk"))
    tmp.replace(path)


def duckdb_alone(folder: Path) -> float:
    """The floor: DuckDB's own read_csv of orders.csv into a table, nothing else."""
    path = folder / "baseline.duckdb"
    con = warehouse.connect(path)
    start = time.perf_counter()
    con.execute(
        "create table t as select * from read_csv($path, all_varchar = true)",
        {"path": str(folder / "orders.csv")},
    ).fetchall()
    seconds = time.perf_counter() - start
    con.close()
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--accounts", type=int, default=300_000)
    parser.add_argument("--gbk", action="store_true", help="write orders.csv in GBK")
    parser.add_argument("--keep", type=Path, help="reuse / keep generated files in DIR")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if not (folder / "orders.csv").exists():
            start = time.perf_counter()
            generate(folder, args.rows, args.accounts)
            if args.gbk:
                to_gbk(folder / "orders.csv")
            print(f"generate: {time.perf_counter() - start:.1f} s")
        size = (folder / "orders.csv").stat().st_size / 1e6
        baseline = duckdb_alone(folder) if not args.gbk else None
        con = warehouse.connect(folder / "bench.duckdb")
        start = time.perf_counter()
        raw = ingest.load_raw(con, folder)
        loaded = time.perf_counter()
        result = validate.stage(con, "bench")
        staged = time.perf_counter()
        misnumbered = warehouse.scalar(
            con, "select count(*) from raw.orders where _row <> substr(order_id, 2)::bigint"
        )
        print(f"orders.csv: {raw['orders'].rows} rows, {size:.0f} MB, {raw['orders'].encoding}")
        if baseline is not None:
            print(f"DuckDB alone (read_csv into a table, same settings): {baseline:.1f} s")
        print(f"load_raw: {loaded - start:.1f} s")
        print(f"stage:    {staged - loaded:.1f} s")
        print(f"total:    {staged - start:.1f} s")
        print(f"rows whose _row is not their record number: {misnumbered}")
        print(f"counts: {result.counts}")
        con.close()
        (folder / "bench.duckdb").unlink(missing_ok=True)
        (folder / "bench.duckdb.wal").unlink(missing_ok=True)
        if misnumbered:
            raise SystemExit("raw._row does not match file order")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
