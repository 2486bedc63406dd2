"""What integer identifier keys would save: the identifier chain rebuilt on 128-bit hashes.

    .venv/bin/python benchmarks/try_integer_identifiers.py --db /tmp/og-scale/10000000-csv/wh.duckdb \\
        [--rounds 2] [--out benchmarks/results/integer_identifiers.json]

The redesign the scale issue needs starts with narrow, integer-keyed per-order tables. This
measures its first piece on a scanned warehouse before anyone builds it: `order_keys` with
its buyer and nine identifier texts stored as 128-bit hashes (`md5_number`: DuckDB's 64-bit
`hash()` collides on structured text, 85 times among the 1.03M strict address keys of the
10M-order world, e.g. '苏州市|相城区|桃源居|B2|U1|R204' and '…|B5|U1|R201', so it cannot
stand in for a key), and `account_identifiers`,
`identifier_stats` and `account_pairs` run on those, against the production models. The
hashed variants are the production SQL with its inputs swapped (each swap asserted, so a
changed model fails here instead of measuring something else), so they follow the models.
Both chains are built into a scratch schema `zz`, alternating, with the nightly tables'
settings; the hashed chain must give the same account pairs, row for row. The scratch
schema is dropped at the end. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from orderguard import features, warehouse
from orderguard.graphs import GraphSettings

# the nine identifier columns of order_keys account_identifiers reads
IDENTIFIER_COLUMNS = ("device_key", "payer_key", "ip_key", "ip_net_key", "phone_key", "phone_prefix7",
                      "receiver_key", "address_strict_key", "address_building_key")


def _hashed(column: str) -> str:
    return f"case when {column} is not null then md5_number({column}) end"


ORDER_KEYS_HASHED = (
    "select * replace (md5_number(buyer_id) as buyer_id, "
    + ", ".join(f"{_hashed(c)} as {c}" for c in IDENTIFIER_COLUMNS)
    + ") from intermediate.order_keys"
)

REGISTRATIONS_HASHED = """registrations as materialized (
    select md5_number(a.account_id) as account_id, {device} as device, {ip} as ip,
           {ip_net} as ip_net, {phone} as phone, {phone_range} as phone_range
    from staging.accounts a
    left join intermediate.norm_ip i on i.ip_raw = a.ip
    left join intermediate.norm_phone p on p.phone_raw = a.phone
),""".format(device=_hashed("og_token(a.device_id)"), ip=_hashed("i.ip_norm"),
             ip_net=_hashed("i.ip_network"), phone=_hashed("p.phone_norm"),
             phone_range=_hashed("p.phone_prefix7"))


def swap(sql: str, old: str, new: str, *, regex: bool = False) -> str:
    found = re.search(old, sql, re.S) if regex else old in sql
    if not found:
        raise AssertionError(f"the production model changed: {old[:60]!r} is gone; update this script")
    return re.sub(old, lambda _: new, sql, count=1, flags=re.S) if regex else sql.replace(old, new, 1)


def hashed_models() -> dict[str, str]:
    """The production SQL of the chain, reading the hashed tables."""
    identifiers = warehouse.sql_text("intermediate", "account_identifiers")
    identifiers = swap(identifiers, "select * from intermediate.order_keys", "select * from zz.order_keys_h")
    identifiers = swap(identifiers, r"registrations as materialized \(.*?\n\),", REGISTRATIONS_HASHED,
                       regex=True)
    stats = warehouse.sql_text("intermediate", "identifier_stats")
    stats = swap(stats, "select * from intermediate.account_identifiers",
                 "select * from zz.account_identifiers_h")
    stats = swap(stats, "from intermediate.order_keys", "from zz.order_keys_h")
    stats = stats.replace("from intermediate.order_keys", "from zz.order_keys_h")  # both halves
    pairs = warehouse.sql_text("intermediate", "account_pairs")
    pairs = swap(pairs, "select * from intermediate.account_identifiers",
                 "select * from zz.account_identifiers_h")
    pairs = swap(pairs, "select * from intermediate.identifier_stats\n",
                 "select * from zz.identifier_stats_h\n")
    # the accounts are integers already: no dense numbering of their names, and the names
    # come back from staging.accounts through the same hash
    pairs = swap(pairs, r"account_keys as \(.*?\n\),\nkeyed_members as \(.*?\n\),", """keyed_members as (
    select m.account_id as account_key, m.identifier_key, m.type_bit, m.family_code, m.rarity_weight
    from members m
),
account_keys as (
    select md5_number(account_id) as account_key, account_id from staging.accounts
),""", regex=True)
    pairs = swap(pairs, "select a.account_id as account_a, b.account_id as account_b,",
                 "select least(a.account_id, b.account_id) as account_a, "
                 "greatest(a.account_id, b.account_id) as account_b,")
    return {"order_keys": ORDER_KEYS_HASHED, "account_identifiers": identifiers,
            "identifier_stats": stats, "account_pairs": pairs}


def build(con, table: str, sql: str, params: dict) -> dict:
    started, cpu = time.perf_counter(), os.times()
    with warehouse.text_uncompressed(con):
        con.execute(f"create or replace table zz.{table} as\n{sql}", warehouse.bind(sql, params))
    done = os.times()
    rows = con.execute(f"select count(*) from zz.{table}").fetchall()[0][0]
    blocks = con.execute(f"select count(distinct block_id) from pragma_storage_info('zz.{table}') "
                         "where block_id >= 0").fetchall()[0][0]
    return {"wall_s": round(time.perf_counter() - started, 2),
            "cpu_s": round(done.user - cpu.user + done.system - cpu.system, 1),
            "rows": rows, "gib": round(blocks * 262144 / 1024**3, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a scanned warehouse (the bench's, say)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/integer_identifiers.json")
    args = parser.parse_args(argv)
    con = warehouse.connect(args.db)
    con.execute("create schema if not exists zz")
    params = features.feature_params(con, GraphSettings())
    production = {"order_keys": "select * from intermediate.order_keys",  # its write, as stored
                  **{m: warehouse.sql_text("intermediate", m)
                     for m in ("account_identifiers", "identifier_stats", "account_pairs")}}
    hashed = hashed_models()
    runs: dict[str, list] = {}
    for _ in range(args.rounds):
        for model in production:
            for variant, sql in (("strings", production[model]), ("hashed", hashed[model])):
                table = f"{model}_h" if variant == "hashed" else f"{model}_s"
                result = build(con, table, sql, params)
                runs.setdefault(f"{model} {variant}", []).append(result)
                print(f"{model:20s} {variant:8s} {result['wall_s']:6.1f} s {result['cpu_s']:6.1f} CPU-s "
                      f"{result['rows']:>12,} rows {result['gib']:5.2f} GiB", flush=True)
        con.execute("checkpoint")
    differ = con.execute("select (select count(*) from (select * from zz.account_pairs_s "
                         "except all select * from zz.account_pairs_h)) + (select count(*) from "
                         "(select * from zz.account_pairs_h except all select * from "
                         "zz.account_pairs_s))").fetchall()[0][0]
    for (table,) in con.execute("select table_name from duckdb_tables() where schema_name = 'zz'").fetchall():
        con.execute(f"drop table zz.{table}")
    con.execute("drop schema zz")
    con.execute("checkpoint")
    best = {name: min(r["wall_s"] for r in results) for name, results in runs.items()}
    summary = {
        "strings_s": round(sum(v for k, v in best.items() if k.endswith("strings")), 1),
        "hashed_s": round(sum(v for k, v in best.items() if k.endswith("hashed")), 1),
        "account_pairs_rows_that_differ": differ,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"db": args.db, "summary": summary, "best_wall_s": best,
                                          "runs": runs}, indent=2), "utf-8")
    print(f"{summary}\nwrote {args.out}")
    return 0 if differ == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
