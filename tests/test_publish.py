"""What support receives: the flagged-order CSV (and XLSX) in Excel, the verdict template
they fill and hand back, and ring ids that stay put from night to night."""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from orderguard import publish, ring_ids
from orderguard.ring_ids import KnownRing
from orderguard.rules import load_rules

BOM = b"\xef\xbb\xbf"
FORMULA_CHARS = tuple(publish.FORMULA_START)
# a mainland mobile number, with or without +86, spaces or dashes, not inside a longer number
MOBILE = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}(?!\d)")
HAN = re.compile(r"[\u4e00-\u9fff]")


def read_like_excel(path) -> list[list[str]]:
    """Excel on Chinese Windows: a UTF-8 BOM switches it to UTF-8, then plain CSV rules."""
    raw = path.read_bytes()
    assert raw.startswith(BOM), f"{path.name} has no UTF-8 BOM: Excel would show mojibake"
    return list(csv.reader(io.StringIO(raw[len(BOM):].decode("utf-8"), newline="")))


def test_flagged_orders_open_in_excel_with_chinese_reasons_and_no_personal_data(scanned_world):
    rows = read_like_excel(scanned_world["out"] / "flagged_orders.csv")
    header, body = rows[0], rows[1:]
    assert body, "the test world has flagged orders"
    wanted = ("order_id", "shop_id", "buyer_id", "amount", "created_at", "risk_level", "score", "reasons",
              "reason_codes", "ring_id", "recommended_action", "evidence", "receiver_phone", "address_area",
              "commission_settled", "other_rings")
    assert set(wanted) <= set(header)
    assert "payment_account" not in header and "receiver_name" not in header
    col = {name: i for i, name in enumerate(header)}
    text = "\n".join(",".join(r) for r in rows)
    assert not MOBILE.search(text), f"a full mobile number is published: {MOBILE.search(text).group()}"
    for row in body:
        for cell in row:
            assert not cell.startswith(FORMULA_CHARS), f"formula-like cell {cell!r}"
        assert HAN.search(row[col["reasons"]]), f"order {row[col['order_id']]} has no Chinese reason"
        assert row[col["recommended_action"]] in publish.ACTION_WORDS
        assert re.fullmatch(r"\d{3}\*{4}\d{4}|", row[col["receiver_phone"]])
    # what the export held about payers and full addresses never reaches support
    orders = pl.read_csv(scanned_world["input"] / "orders.csv", infer_schema=False)
    flagged_ids = {r[col["order_id"]] for r in body}
    mine = orders.filter(pl.col("order_id").is_in(list(flagged_ids)))
    payers = set(mine["payment_account"].drop_nulls()) - {""}
    assert payers and not any(p in text for p in payers)
    rooms = [a for a in mine["address"].drop_nulls() if re.search(r"\d+室$", a)]
    assert rooms and not any(a in text for a in rooms)
    scores = [float(r[col["score"]]) for r in body]
    assert scores == sorted(scores, reverse=True)


def test_every_published_csv_is_bom_utf8_with_no_cell_a_spreadsheet_would_run(scanned_world):
    for name in ("flagged_orders.csv", "flagged_accounts.csv", "rings.csv", "quarantine.csv",
                 "verdicts_template.csv"):
        rows = read_like_excel(scanned_world["out"] / name)
        assert rows, name
        bad = [c for r in rows for c in r if c.startswith(FORMULA_CHARS)]
        assert not bad, f"{name}: {bad[:3]}"


def test_hostile_text_is_neutralised_and_numbers_are_left_alone(tmp_path):
    evil = ["=HYPERLINK(\"http://x\")", "+86 138", "-2+3", "@SUM(A1)", "\tx", "\rx", "＝1+1", "a=b", None]
    frame = pl.DataFrame({"text": evil, "amount": [-1.5] * len(evil)})
    publish.write_csv(frame, tmp_path / "x.csv")
    rows = read_like_excel(tmp_path / "x.csv")[1:]
    assert [r[0] for r in rows] == [
        "'=HYPERLINK(\"http://x\")", "'+86 138", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "'＝1+1", "a=b", "",
    ]
    assert {r[1] for r in rows} == {"-1.5"}


def test_phones_are_masked_to_prefix_and_last_four_whatever_their_shape():
    phones = pl.DataFrame({"p": ["+86 137 9358 6952", "187-5688-2376", "008613725405496", "138****2479",
                                 "12345", None]})
    masked = phones.select(publish.mask_phone(pl.col("p")))["p"].to_list()
    assert masked == ["137****6952", "187****2376", "137****5496", "138****2479", None, None]


def test_recommended_action_follows_ring_status_money_and_confidence():
    rows = [
        ("self_referral", "completed", "high", 0.95, 4.0, 0.0, "冻结佣金", "D1"),
        ("deep_chain", "paid", "medium", 0.65, 0.0, 0.0, "冻结佣金", "D1"),  # commission to come
        # no distributor's link: no commission will come to freeze
        ("deep_chain", "paid", "medium", 0.65, 0.0, 0.0, "人工核实", None),
        # nothing pending on a standing order: nothing to freeze, ask for proof
        ("self_referral", "completed", "high", 0.95, 0.0, 0.0, "人工核实", "D1"),
        ("self_referral", "delivered", "high", 0.95, 0.0, 6.0, "人工核实", "D1"),
        # undone with nothing settled or pending: nothing left to freeze or claw back
        ("self_referral", "refunded", "high", 0.95, 0.0, 0.0, "观察", "D1"),
        ("deep_chain", "cancelled", "medium", 0.65, 0.0, 0.0, "观察", "D1"),
        ("fake_shipping", "shipped", "high", 0.9, 0.0, 0.0, "人工核实", "D1"),
        ("brushing", "paid", "medium", 0.65, 0.0, 0.0, "取消订单", "D1"),
        ("brushing", "completed", "high", 0.9, 12.0, 0.0, "冻结佣金", "D1"),
        ("brushing", "completed", "high", 0.9, 0.0, 0.0, "人工核实", "D1"),
        ("malicious", "cancelled", "high", 0.9, 0.0, 0.0, "观察", "D1"),
        (None, "paid", "high", 0.85, 0.0, 0.0, "取消订单", "D1"),
        (None, "delivered", "medium", 0.62, 0.0, 0.0, "观察", "D1"),
        (None, "delivered", "medium", 0.75, 0.0, 0.0, "人工核实", "D1"),
        # commission paid out on an order since refunded (佣金套利): claw it back, whatever
        # the ring; still pending on a refunded order: stop it settling
        ("malicious", "refunded", "high", 0.99, 0.0, 27.3, "追回佣金", "D1"),
        ("self_referral", "refunded", "high", 0.95, 0.0, 8.0, "追回佣金", "D1"),
        (None, "cancelled", "medium", 0.7, 0.0, 5.0, "追回佣金", "D1"),
        ("brushing", "refunded", "high", 0.9, 6.0, 0.0, "冻结佣金", "D1"),
        # a settled commission on an order that stands is earned: no claw-back
        (None, "completed", "medium", 0.62, 0.0, 9.0, "观察", "D1"),
        # a flood of bulk orders not yet cancelled: the shop checks before shipping
        (None, "paid", "medium", 0.62, 0.0, 0.0, "人工核实", None, ["BULK_ORDER_FLOOD"]),
        (None, "cancelled", "medium", 0.62, 0.0, 0.0, "观察", None, ["BULK_ORDER_FLOOD"]),
        # no ring, but the commission flows to the buyer's own other account: self-referral,
        # so its pending commission is frozen; with nothing pending the usual rules apply
        (None, "paid", "medium", 0.62, 3.5, 0.0, "冻结佣金", "D1", ["COMMISSION_TO_SELF"]),
        (None, "completed", "medium", 0.62, 0.0, 0.0, "观察", "D1", ["COMMISSION_TO_SELF"]),
    ]
    cases = pl.DataFrame(
        [row if len(row) == 9 else (*row, []) for row in rows],  # no reason codes unless given
        schema={"ring_kind": pl.String, "status": pl.String, "risk_level": pl.String,
                "score": pl.Float64, "commission_pending": pl.Float64,
                "commission_settled": pl.Float64, "want": pl.String, "referrer_id": pl.String,
                "reason_codes": pl.List(pl.String)},
        orient="row",
    ).with_columns(pl.lit(None, pl.String).alias("prior_verdict"),
                   pl.lit(None, pl.List(pl.String)).alias("other_ring_kinds"))
    got = cases.select(publish.recommended_action(0.6, 0.8).alias("a"))["a"].to_list()
    assert got == cases["want"].to_list()
    # an order support already judged a false positive is only watched, whatever its ring;
    # a confirmed one gets its usual action (the first two cases freeze commission)
    judged = cases.head(3).with_columns(pl.Series("prior_verdict", ["false_positive", "confirmed", None]))
    got = judged.select(publish.recommended_action(0.6, 0.8).alias("a"))["a"].to_list()
    assert got == ["观察", *cases["want"].to_list()[1:3]]
    # ... unless nothing is left to stop, freeze or claw back: it is not checked again
    standing = cases.filter(pl.col("want") == "人工核实").with_columns(
        pl.lit("confirmed").alias("prior_verdict"))
    actions = standing.select(publish.recommended_action(0.6, 0.8).alias("a"))["a"]
    assert standing.height and set(actions) == {"观察"}
    # an open self-referral order that is also in a brushing ring is cancelled, as the
    # brushing ring's own orders are; undone, its settled commission is still clawed back
    open_orders = cases.filter(pl.col("ring_kind").is_in(["self_referral", "deep_chain"])
                               & (pl.col("status") == "paid"))
    also = open_orders.with_columns(
        pl.Series("other_ring_kinds", [["brushing"]] * open_orders.height, dtype=pl.List(pl.String)))
    assert also.height and set(open_orders["want"]) != {"取消订单"}
    assert set(also.select(publish.recommended_action(0.6, 0.8).alias("a"))["a"]) == {"取消订单"}
    undone = cases.filter(pl.col("want") == "追回佣金").with_columns(
        pl.lit(["malicious"], pl.List(pl.String)).alias("other_ring_kinds"))
    assert set(undone.select(publish.recommended_action(0.6, 0.8).alias("a"))["a"]) == {"追回佣金"}


def test_evidence_names_every_measured_fact_in_chinese(scanned_world):
    """Support reads 同设备账号数=8, never a column name such as buyer_orders=2."""
    flagged = pl.read_csv(scanned_world["out"] / "flagged_orders.csv", infer_schema=False)
    facts = flagged["evidence"].str.extract_all(r"[A-Za-z_][A-Za-z0-9_]*=").explode().drop_nulls()
    assert facts.is_empty(), f"untranslated facts in evidence: {sorted(set(facts))}"
    assert flagged["evidence"].str.contains("=").any(), "the test world's evidence quotes facts"
    # and what the ring detectors saw is said in Chinese too (English stays in rings.csv)
    in_rings = flagged.filter(pl.col("ring_id").is_not_null())
    assert set(in_rings["ring_kind"]) >= {"brushing", "self_referral", "malicious"}
    english = in_rings.filter(pl.col("evidence").str.contains(r"[A-Za-z]+ [A-Za-z]+ [A-Za-z]+"))
    assert english.is_empty(), english.select("ring_kind", "evidence").head(3).rows()
    # one commission figure per ring, in yuan with two decimals as the money columns show it
    money = in_rings["evidence"].str.extract_all(r"(?:金额|涉及佣金|佣金) [0-9.]+ 元").explode()
    assert money.str.contains(r" \d+\.\d\d 元$").all(), money.unique().head(5).to_list()
    assert (in_rings["evidence"].str.count_matches("佣金 [0-9.]+ 元") == 1).all()


def test_xlsx_holds_the_same_rows_as_text_never_as_formulas(scanned_world):
    from openpyxl import load_workbook

    csv_rows = read_like_excel(scanned_world["out"] / "flagged_orders.csv")
    ws = load_workbook(scanned_world["out"] / "flagged_orders.xlsx").active
    values = list(ws.iter_rows(values_only=True))
    assert list(values[0]) == csv_rows[0]
    assert [r[0] for r in values[1:]] == [r[0] for r in csv_rows[1:]]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref.startswith("A1:"), "a filter on the header row"
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)


def test_a_night_too_big_for_excel_keeps_its_top_rows_in_the_xlsx_and_all_in_the_csv(tmp_path):
    from openpyxl import load_workbook

    frame = pl.DataFrame({"order_id": [f"O{i}" for i in range(30)],
                          "score": [1 - i / 100 for i in range(30)],
                          "reasons": ["=HYPERLINK(1)"] * 30})
    left_out = publish.write_xlsx(frame, tmp_path / "f.xlsx", max_rows=20)
    assert left_out == 10
    rows = list(load_workbook(tmp_path / "f.xlsx").active.iter_rows(values_only=True))
    assert [r[0] for r in rows[1:21]] == [f"O{i}" for i in range(20)], "the highest scores first"
    assert "10" in rows[-1][0] and "flagged_orders.csv" in rows[-1][0]
    assert all(not str(r[2]).startswith("=") for r in rows[1:21]), "formulas neutralised"


def test_the_workbook_written_again_a_second_later_has_the_same_bytes(tmp_path):
    import time

    frame = pl.DataFrame({"order_id": ["O1", "O2"], "score": [0.9, 0.7],
                          "evidence": ["同设备账号数=8", None]})
    publish.write_xlsx(frame, tmp_path / "a.xlsx")
    time.sleep(1.1)  # the writer stamps the time to the second
    publish.write_xlsx(frame, tmp_path / "b.xlsx")
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()


def test_support_fills_the_verdict_template_and_feedback_reads_it_back(scanned_world, tmp_path):
    from orderguard import cli, feedback, warehouse

    template = scanned_world["out"] / "verdicts_template.csv"
    assert template.resolve().parent == (scanned_world["out"] / "flagged_orders.csv").resolve().parent
    rows = read_like_excel(template)
    assert rows[0] == ["order_id", "verdict", "note", "carried_from"]
    flagged = read_like_excel(scanned_world["out"] / "flagged_orders.csv")
    assert [r[0] for r in rows[1:]] == [r[0] for r in flagged[1:]], "pre-filled with tonight's flagged ids"
    # support marks every order, in Chinese or English, and saves from Excel (UTF-8 with BOM)
    words = ["确认", "误报", "confirmed", "false_positive"]
    filled = [rows[0]] + [[oid, words[i % 4], "客服核实：收货人不存在" if i % 4 == 0 else "", ""]
                          for i, (oid, _, _, _) in enumerate(rows[1:])]
    out = io.StringIO()
    csv.writer(out).writerows(filled)
    back = tmp_path / "verdicts_filled.csv"
    back.write_bytes(BOM + out.getvalue().encode("utf-8"))
    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    assert cli.main(["feedback", "--verdicts", str(back), "--db", str(db)]) == 0
    with warehouse.connect(db) as con:
        stored = warehouse.query(con, "select order_id, verdict, note from ops.verdicts order by source_row")
        precision = feedback.rule_precision(con)
    assert stored.height == len(filled) - 1
    assert stored["order_id"].to_list() == [r[0] for r in filled[1:]]
    meaning = {"确认": "confirmed", "误报": "false_positive", "confirmed": "confirmed",
               "false_positive": "false_positive"}
    assert stored["verdict"].to_list() == [meaning[r[1]] for r in filled[1:]]
    assert stored["note"].drop_nulls().str.contains("收货人").all()
    assert precision.height > 0 and precision["precision"].is_between(0, 1).all()


# ------------------------------------------------------------------------- ring ids


def known(ring_id, kind, members, night="2026-10-01"):
    return KnownRing(ring_id, kind, frozenset(members), night)


def test_a_ring_keeps_its_id_when_most_of_its_members_carry_over():
    earlier = [known("BR-old", "brushing", ["a", "b", "c", "d"])]
    tonight = [("BR-new", "brushing", ["a", "b", "c", "e"]),  # Jaccard 3/5
               ("BR-other", "brushing", ["x", "y", "z"])]
    assert ring_ids.match_ids(tonight, earlier) == {"BR-new": "BR-old", "BR-other": "BR-other"}


def test_a_ring_gets_a_new_id_below_half_overlap_or_of_another_kind():
    earlier = [known("BR-old", "brushing", ["a", "b", "c", "d"])]
    assert ring_ids.match_ids([("BR-new", "brushing", ["a", "b", "x", "y", "z"])], earlier) == {
        "BR-new": "BR-new"}  # Jaccard 2/7
    assert ring_ids.match_ids([("SE-new", "self_referral", ["a", "b", "c", "d"])], earlier) == {
        "SE-new": "SE-new"}


def test_an_old_id_goes_to_the_best_match_only_and_never_twice():
    earlier = [known("BR-old", "brushing", ["a", "b", "c", "d"])]
    tonight = [("BR-1", "brushing", ["a", "b", "c"]), ("BR-2", "brushing", ["a", "b", "c", "d", "e"])]
    got = ring_ids.match_ids(tonight, earlier)
    assert got == {"BR-1": "BR-1", "BR-2": "BR-old"}
    # a new hash id that collides with an id handed to another ring gets a suffix
    earlier = [known("BR-x", "brushing", ["a", "b", "c"])]
    tonight = [("BR-y", "brushing", ["a", "b", "c", "d"]), ("BR-x", "brushing", ["p", "q"])]
    assert ring_ids.match_ids(tonight, earlier) == {"BR-y": "BR-x", "BR-x": "BR-x-2"}


@pytest.mark.parametrize("order", [0, 1])
def test_matching_does_not_depend_on_the_order_rings_come_in(order):
    earlier = [known("BR-a", "brushing", ["a", "b", "c"], "2026-10-01"),
               known("BR-b", "brushing", ["a", "b", "c"], "2026-10-02")]
    tonight = [("BR-n", "brushing", ["a", "b", "c", "d"]), ("BR-m", "brushing", ["a", "b", "c", "e"])]
    got = ring_ids.match_ids(tonight[::-1] if order else tonight, earlier)
    assert got == {"BR-m": "BR-b", "BR-n": "BR-a"}  # equal overlap: the most recent night, then ids


def test_ring_history_from_before_chinese_evidence_keeps_its_nights_and_gains_the_column():
    import duckdb

    con = duckdb.connect()
    con.execute("create schema ops; create schema marts")
    old_shape = ring_ids.HISTORY_DDL.replace(", evidence_zh varchar", "")
    assert old_shape != ring_ids.HISTORY_DDL
    con.execute(old_shape)
    con.execute("insert into ops.ring_history values ('2026-10-01', 'BR-1', 'brushing', 3, 'a;b;c', "
                "4, 100, 5, '3 of 3 accounts', 'run-1')")
    con.execute("create table marts.rings as select 'BR-1' as ring_id, 'brushing' as kind, "
                "3::bigint as size, 'a;b;c' as members, 5::bigint as order_count, 120.0 as gmv, "
                "6.0 as commission_at_stake, "
                "'3 of 3 accounts' as evidence, '3 个账号中有 3 个' as evidence_zh")
    ring_ids.record_night(con, "2026-10-02", "run-2")
    rows = con.execute("select run_date, evidence, evidence_zh from ops.ring_history order by 1").fetchall()
    assert rows == [("2026-10-01", "3 of 3 accounts", None),
                    ("2026-10-02", "3 of 3 accounts", "3 个账号中有 3 个")]
    ring_ids.record_night(con, "2026-10-02", "run-3")  # a rerun replaces its night
    assert con.execute("select count(*), max(run_id) from ops.ring_history").fetchone() == (2, "run-3")


def test_a_rerun_swaps_the_night_in_one_step_and_a_half_swap_is_put_back(tmp_path, monkeypatch):
    """Rerunning a night replaces nights/<date> atomically (readers see the old results or
    the new, never neither); a run killed between the fallback's two renames has its night's
    previous results put back by the next run."""
    out = tmp_path / "out"

    def stage(text: str) -> Path:
        folder = publish.staging_folder(out, f"run-{text}")
        (folder / "run.json").write_text(text, "utf-8")
        return folder

    publish.swap_in(out, stage("first"), "2026-10-30")

    def no_rename(self, target):
        raise AssertionError(f"non-atomic rename of {self}")

    with monkeypatch.context() as m:
        m.setattr(Path, "rename", no_rename)
        publish.swap_in(out, stage("second"), "2026-10-30")
    assert (out / "run.json").read_text("utf-8") == "second"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert [p.name for p in (out / "nights").iterdir()] == ["2026-10-30"]
    # the fallback killed between its renames: the night is gone, its old copy is aside
    (out / "nights" / "2026-10-30").rename(out / "nights" / ".old-2026-10-30-4242")
    assert not (out / "run.json").exists()
    publish.staging_folder(out, "run-third")
    assert (out / "run.json").read_text("utf-8") == "second"
    assert not (out / "nights" / ".old-2026-10-30-4242").exists()


def test_rescanning_an_earlier_night_rewrites_its_folder_and_leaves_latest_on_the_newest(tmp_path):
    out = tmp_path / "out"
    for night, text in (("2026-10-29", "old"), ("2026-10-30", "new"), ("2026-10-29", "old again")):
        staged = publish.staging_folder(out, f"run-{text}")
        (staged / "run.json").write_text(text, "utf-8")
        publish.swap_in(out, staged, night)
    assert (out / "run.json").read_text("utf-8") == "new"
    assert (out / "nights" / "2026-10-29" / "run.json").read_text("utf-8") == "old again"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_night_folders_before_the_kept_history_go_unless_a_kept_row_or_latest_names_them(tmp_path):
    """--keep-days forgets a night's folder with its history: but not one whose listing
    support's verdict template still points to (ops.published_flags names it), nor the one
    `latest` shows (an old night rescanned on a fresh folder); refused runs' folders go
    after keep_days days untouched. A removal killed half-way is finished by the next run."""
    import os

    out = tmp_path / "out"
    for night in ("2026-10-01", "2026-10-02", "2026-10-03", "2026-10-20", "2026-10-21"):
        staged = publish.staging_folder(out, f"run-{night}")
        (staged / "run.json").write_text(night, "utf-8")
        publish.swap_in(out, staged, night)
    (out / "nights" / "notes").mkdir()  # not a night: never touched
    now = 1_800_000_000.0
    for run_id, days_old in (("aged", 31), ("recent", 29)):
        folder = out / "refused" / run_id
        folder.mkdir(parents=True)
        (folder / "quarantine.csv").write_text("x", "utf-8")
        os.utime(folder, (now - days_old * 86400, now - days_old * 86400))

    forget = publish.folders_to_forget(out, "2026-10-20", {"2026-10-02"}, 30, now)
    assert [f.name for f in forget["night_folders"]] == ["2026-10-01", "2026-10-03"]
    assert [f.name for f in forget["refused_folders"]] == ["aged"]
    # kill the removal of 2026-10-03 half-way: aside, not under its name, and gone next run
    for folders in forget.values():
        publish.forget_folders(folders[:1])
    (out / "nights" / "2026-10-03").rename(out / "nights" / f"{publish.FORGOTTEN}2026-10-03")
    publish.staging_folder(out, "run-next")
    assert sorted(p.name for p in (out / "nights").iterdir()) == [
        "2026-10-02", "2026-10-20", "2026-10-21", "notes"]
    assert [p.name for p in (out / "refused").iterdir()] == ["recent"]
    assert (out / "run.json").read_text("utf-8") == "2026-10-21"

    # latest on an old night (rescanned into a fresh folder): its folder stays
    fresh = tmp_path / "fresh"
    staged = publish.staging_folder(fresh, "run-old")
    publish.swap_in(fresh, staged, "2026-09-01")
    assert publish.folders_to_forget(fresh, "2026-10-20", set(), 30, now)["night_folders"] == []


def test_ring_evidence_counts_a_fake_shipping_shop_as_a_shop_and_a_farm_in_accounts():
    """The member of a fake-shipping ring is the shop writing the waybills: support reads
    1 家店铺, never 1 个账号."""
    rings = pl.DataFrame({
        "ring_kind": ["fake_shipping", "brushing"], "ring_id": ["FS-1", "BR-1"],
        "ring_size": [1, 12], "ring_orders": [147, 40], "ring_gmv": [9000.0, 3000.0],
        "ring_commission": [0.0, 0.0], "ring_evidence": ["运单号重复", "共用同一设备"],
        "reason_codes": [["RING_FAKE_SHIPPING"], ["RING_BRUSHING"]],
    })
    evidence = rings.select(publish.evidence_text(load_rules(), rings.schema).alias("e"))["e"].to_list()
    assert evidence[0].startswith("虚假发货团伙 FS-1：1 家店铺，147 单")
    assert evidence[1].startswith("刷单团伙 BR-1：12 个账号，40 单")


def test_what_changed_tells_a_returning_ring_from_a_new_one_and_names_where_a_gone_one_went():
    """A ring away for a night is back, not new; a ring whose members all joined another is
    gone into that ring, which the risk lead should read, not a ring that disappeared."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("create schema ops")
    con.execute(ring_ids.HISTORY_DDL)
    rows = [  # run_date, ring_id, members
        ("2026-10-01", "BR-back", "a;b;c"), ("2026-10-01", "BR-small", "p;q;r"),
        ("2026-10-01", "BR-big", "s;t;u;v"), ("2026-10-01", "BR-lost", "x;y"),
        ("2026-10-02", "BR-small", "p;q;r"), ("2026-10-02", "BR-big", "s;t;u;v"),
        ("2026-10-02", "BR-lost", "x;y"),
        ("2026-10-03", "BR-back", "a;b;c"), ("2026-10-03", "BR-big", "p;q;r;s;t;u;v"),
        ("2026-10-03", "BR-fresh", "m;n;o"),
    ]
    con.executemany("insert into ops.ring_history (run_date, ring_id, kind, size, members) "
                    "values (?, ?, 'brushing', ?, ?)", [(d, r, len(m.split(";")), m) for d, r, m in rows])
    changed = ring_ids.changes(con, "2026-10-03")
    assert changed["previous"] == "2026-10-02"
    assert changed["new"]["ring_id"].to_list() == ["BR-fresh"]
    assert changed["returned"]["ring_id"].to_list() == ["BR-back"]
    gone = dict(changed["gone"].select("ring_id", "now_in").iter_rows())
    assert gone == {"BR-lost": None, "BR-small": "BR-big"}
