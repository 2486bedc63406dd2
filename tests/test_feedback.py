from datetime import datetime, timedelta

import numpy as np
import polars as pl

from orderguard import feedback


def test_supervised_layer_trains_when_an_optional_column_is_empty_everywhere(tmp_path):
    # an export without paid_at: pay_delay_s is null on every order
    n = 300
    rng = np.random.default_rng(0)
    label = (np.arange(n) % 5 == 0).astype(np.int8)
    features = pl.DataFrame({
        "order_id": [f"O{i}" for i in range(n)],
        "created_at": [datetime(2015, 1, 1) + timedelta(hours=i) for i in range(n)],
        "account_age_s": np.where(label == 1, 30, 86400 + rng.integers(0, 1000, n)),
        "pay_delay_s": pl.Series([None] * n, dtype=pl.Int64),
    })
    labels = pl.DataFrame({"order_id": features["order_id"], "label": label})
    model, result = feedback.train_supervised(features, labels, tmp_path, 200, 7)
    assert model is not None and result.active
    assert result.meta["features"] == ["account_age_s"]
    points = feedback.supervised_points(features, model, result.meta["features"], 3.0)
    fraud = points.filter(pl.Series(label == 1))["supervised_points"].mean()
    assert fraud > points.filter(pl.Series(label == 0))["supervised_points"].mean()


def test_verdicts_teach_what_the_rules_miss_and_raise_average_precision_on_later_orders(
        scanned_world, tmp_path):
    """Rules with a blind spot (brushing rings given no points): support's verdicts on the
    first half of a generated month train the supervised layer, which is used because it
    ranks the later verdicts better, and the second half's orders rank better with it."""
    import shutil
    from importlib import resources

    import duckdb
    from sklearn.metrics import average_precision_score

    from orderguard.scan import ScanOptions, run_scan

    text = resources.files("orderguard").joinpath("rules.toml").read_text("utf-8")
    blind_text = text.replace('feature = "ring_brushing"\nop = "=="\nthreshold = true\npoints = 3.5',
                              'feature = "ring_brushing"\nop = "=="\nthreshold = true\npoints = 0.0')
    assert blind_text != text
    blind = tmp_path / "blind.toml"
    blind.write_text(blind_text, "utf-8")

    def scan(db, name):
        return run_scan(ScanOptions(input_dir=scanned_world["input"], out_dir=tmp_path / name, db_path=db,
                                    models_dir=tmp_path / f"{name}-models", rules_path=blind))

    labels = pl.read_csv(scanned_world["labels"] / "orders.csv", infer_schema=False)
    with duckdb.connect(str(scanned_world["db"]), read_only=True) as con:
        created = con.sql("select order_id, created_at from marts.order_scores").pl()
    middle = created["created_at"].sort()[created.height // 2]
    first_half = created.filter(pl.col("created_at") < middle).join(labels, on="order_id")
    verdict_file = tmp_path / "verdicts.csv"
    first_half.select(
        "order_id",
        pl.when(pl.col("is_fraud") == "1").then(pl.lit("confirmed")).otherwise(pl.lit("false_positive"))
        .alias("verdict"),
    ).write_csv(verdict_file)

    before_db, after_db = tmp_path / "before.duckdb", tmp_path / "after.duckdb"
    shutil.copy(scanned_world["db"], before_db)
    shutil.copy(scanned_world["db"], after_db)
    scan(before_db, "before")
    with duckdb.connect(str(after_db)) as con:
        feedback.load_verdicts(con, verdict_file)
    run = scan(after_db, "after")
    assert run["scoring"]["supervised"].startswith("trained on")
    meta = (tmp_path / "after-models" / "supervised.meta.json").read_text("utf-8")
    assert "later_30pct_ap_with_model" in meta and "scikit-learn" in meta

    second = created.filter(pl.col("created_at") >= middle).join(labels, on="order_id")
    y = second.sort("order_id")["is_fraud"].cast(pl.Int8).to_numpy()

    def ap(name: str) -> float:
        scores = pl.read_parquet(tmp_path / name / "order_scores.parquet")
        s = second.select("order_id").join(scores, on="order_id").sort("order_id")["score"].to_numpy()
        return average_precision_score(y, s)

    assert ap("after") > ap("before") + 0.01


def test_the_model_is_used_only_when_it_ranks_later_verdicts_better_than_the_rules(tmp_path):
    """Verdicts the rules already rank perfectly leave the model nothing to add: not used.
    Rules that rank them at random leave it everything: used."""
    n = 400
    label = (np.arange(n) % 4 == 0).astype(np.int8)
    features = pl.DataFrame({
        "order_id": [f"O{i:03d}" for i in range(n)],
        "created_at": [datetime(2026, 10, 1) + timedelta(hours=i) for i in range(n)],
        "account_age_s": np.where(label == 1, 30, 86400),
    })
    labels = pl.DataFrame({"order_id": features["order_id"], "label": label})
    perfect = features.select("order_id", pl.Series("points", label * 3.0))
    noise = features.select("order_id", pl.Series("points", np.random.default_rng(1).random(n)))
    model, result = feedback.train_supervised(features, labels, tmp_path, 200, 7, baseline=noise)
    assert model is not None and result.meta["metrics"]["later_30pct_ap_with_model"] > 0.99
    assert (tmp_path / "supervised.meta.json").exists()
    model, result = feedback.train_supervised(features, labels, tmp_path, 200, 7, baseline=perfect)
    assert model is None and "not used" in result.reason
    assert not (tmp_path / "supervised.meta.json").exists(), "no earlier night's model is left to read"
    # the same verdicts, all on orders support was sent: they describe the flagged list only
    model, result = feedback.train_supervised(features, labels, tmp_path, 200, 7, baseline=noise,
                                              unsent=feedback.MIN_UNSENT_VERDICTS - 1)
    assert model is None and "judge a random sample of unflagged orders" in result.reason
    model, _ = feedback.train_supervised(features, labels, tmp_path, 200, 7, baseline=noise,
                                         unsent=feedback.MIN_UNSENT_VERDICTS)
    assert model is not None


def test_verdicts_on_support_s_list_alone_never_switch_the_model_on(scanned_world, tmp_path):
    """Support judged every order it was sent (a tenth wrongly cleared) and nothing else: the
    verdicts say nothing about the orders the rules pass (on a ten-night world, a model
    learned from such verdicts put 4,223 rows, 88 % honest, on one night's list). The scan
    does not use it and says why."""
    import shutil

    import duckdb

    from orderguard.scan import ScanOptions, run_scan

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    sent = pl.read_csv(scanned_world["out"] / "flagged_orders.csv", infer_schema=False)["order_id"]
    assert sent.len() >= 200, "enough verdicts for the model"
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text("order_id,verdict\n" + "".join(
        f"{o},{'误报' if i % 10 == 0 else '确认'}\n" for i, o in enumerate(sent)), "utf-8")
    with duckdb.connect(str(db)) as con:
        feedback.load_verdicts(con, verdicts)
        assert feedback.unsent_verdicts(con) == 0
    run = run_scan(ScanOptions(input_dir=scanned_world["input"], out_dir=tmp_path / "out", db_path=db,
                               models_dir=tmp_path / "models"))
    assert "orders support was not sent" in run["scoring"]["supervised"]


def _copy_warehouse(scanned_world, tmp_path):
    import shutil
    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    return db


def _scanned_order_ids(db, n):
    import duckdb
    with duckdb.connect(str(db), read_only=True) as con:
        return [r[0] for r in con.execute(
            "select order_id from marts.order_scores order by score desc, order_id limit $n", {"n": n}
        ).fetchall()]


def _stored(db):
    import duckdb
    with duckdb.connect(str(db), read_only=True) as con:
        return dict(con.execute("select order_id, verdict from ops.verdicts").fetchall())


def test_each_night_the_same_template_name_adds_verdicts_and_a_resent_file_corrects_them(
        scanned_world, tmp_path):
    """Support saves the verdict template under its own name every night: the nights add up;
    sending a file again, or with a verdict changed, replaces only the verdicts it names."""
    import duckdb

    db = _copy_warehouse(scanned_world, tmp_path)
    ids = _scanned_order_ids(db, 8)
    template = tmp_path / "verdicts_template.csv"

    def hand_back(rows):
        template.write_text("order_id,verdict,note\n" + "".join(f"{o},{v},\n" for o, v in rows), "utf-8")
        with duckdb.connect(str(db)) as con:
            return feedback.load_verdicts(con, template)

    first = hand_back([(o, "确认") for o in ids[:5]])
    assert (first["stored"], first["confirmed"], first["false_positive"]) == (5, 5, 0)
    hand_back([(o, "误报") for o in ids[5:]])  # the next night, the same file name
    assert _stored(db) == {**{o: "confirmed" for o in ids[:5]}, **{o: "false_positive" for o in ids[5:]}}
    hand_back([(o, "误报") for o in ids[5:]])  # sent twice: nothing doubles
    changed = hand_back([(ids[0], "确认"), (ids[0], "误报")])  # support changed its mind on one order
    assert changed["stored"] == 1 and "the later row counts" in changed["notes"][0]
    assert "row 1 (line 2" in changed["notes"][0]
    stored = _stored(db)
    assert len(stored) == 8 and stored[ids[0]] == "false_positive" and stored[ids[1]] == "confirmed"
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from ops.verdicts").fetchone()[0] == 8


def test_verdicts_an_older_version_stored_twice_keep_only_the_latest(scanned_world, tmp_path):
    """Versions before the one-row-per-order rule appended a changed verdict beside the old
    one: the next feedback leaves each order's latest, as the table documents."""
    import duckdb

    db = _copy_warehouse(scanned_world, tmp_path)
    ids = _scanned_order_ids(db, 2)
    with duckdb.connect(str(db)) as con:
        feedback._ensure_table(con)
        con.execute("insert into ops.verdicts (order_id, account_id, verdict, note, source_file, "
                    "source_row, received_at) values "
                    "($a, null, 'confirmed', null, 'old.csv', 1, '2026-10-01 09:00'), "
                    "($a, null, 'false_positive', null, 'old.csv', 1, '2026-10-02 09:00'), "
                    "(null, 'U1', 'confirmed', null, 'old.csv', 2, '2026-10-01 09:00'), "
                    "(null, 'U1', 'confirmed', null, 'old.csv', 2, '2026-10-03 09:00')", {"a": ids[0]})
        verdicts = tmp_path / "verdicts.csv"
        verdicts.write_text(f"order_id,verdict\n{ids[1]},确认\n", "utf-8")
        feedback.load_verdicts(con, verdicts)
        rows = con.execute("select coalesce(order_id, account_id), verdict from ops.verdicts "
                           "order by 1").fetchall()
    assert rows == sorted([(ids[0], "false_positive"), (ids[1], "confirmed"), ("U1", "confirmed")])


def test_an_order_row_that_also_names_its_buyer_judges_that_order_only(scanned_world, tmp_path):
    """Support's sheet carries the buyer beside the order: the verdict is on the order, not on
    every order of the buyer (training and precision read it as the scan's prior_verdict does)."""
    import duckdb

    db = _copy_warehouse(scanned_world, tmp_path)
    with duckdb.connect(str(db)) as con:
        order_id, buyer = con.execute(
            "select order_id, buyer_id from intermediate.order_keys where buyer_id in (select "
            "buyer_id from intermediate.order_keys group by 1 having count(*) > 1) "
            "order by order_id limit 1").fetchone()
        verdicts = tmp_path / "verdicts.csv"
        verdicts.write_text(f"order_id,account_id,verdict\n{order_id},{buyer},误报\n", "utf-8")
        feedback.load_verdicts(con, verdicts)
        labelled = feedback.labelled_orders(con)
    assert labelled["order_id"].to_list() == [order_id]


def test_a_verdict_on_the_buyer_does_not_clear_a_shop_s_fake_shipping(scanned_world, tmp_path):
    """Support cleared a customer; the shop that sold to them fakes its waybills: the order
    stays a case about the shop (人工核实), not a cleared customer's order (观察)."""
    import duckdb

    from orderguard.scan import ScanOptions, run_scan

    flagged = pl.read_csv(scanned_world["out"] / "flagged_orders.csv", infer_schema=False)
    faked = flagged.filter(pl.col("ring_kind") == "fake_shipping").sort("order_id").row(0, named=True)
    db = _copy_warehouse(scanned_world, tmp_path)
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text(f"account_id,verdict\n{faked['buyer_id']},误报\n", "utf-8")
    with duckdb.connect(str(db)) as con:
        feedback.load_verdicts(con, verdicts)
    run_scan(ScanOptions(input_dir=scanned_world["input"], out_dir=tmp_path / "out", db_path=db,
                         models_dir=tmp_path / "models"))
    row = pl.read_csv(tmp_path / "out" / "flagged_orders.csv", infer_schema=False).filter(
        pl.col("order_id") == faked["order_id"]).row(0, named=True)
    assert row["prior_verdict"] is None and row["recommended_action"] == faked["recommended_action"]


def test_a_verdict_row_that_cannot_be_used_is_named_by_file_row_and_column(scanned_world, tmp_path):
    import duckdb

    db = _copy_warehouse(scanned_world, tmp_path)
    ids = _scanned_order_ids(db, 2)
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text("order_id,verdict,note\n"
                        f"{ids[0]},confirmed,\n"
                        f"{ids[1]},yes please,\n"
                        "E000000000BOGUS,confirmed,\n"
                        ",误报,no id\n", "utf-8")
    with duckdb.connect(str(db)) as con:
        result = feedback.load_verdicts(con, verdicts)
    assert (result["stored"], result["rejected"]) == (1, 3)
    assert result["problems"][0].startswith(f"{verdicts}, row 2 (line 3 with the header), column verdict:")
    assert "'yes please'" in result["problems"][0] and "false_positive" in result["problems"][0]
    assert "row 3 " in result["problems"][1] and "column order_id" in result["problems"][1]
    assert "E000000000BOGUS" in result["problems"][1]
    assert "row 4 " in result["problems"][2] and "column order_id" in result["problems"][2]
    assert _stored(db) == {ids[0]: "confirmed"}, "an id the warehouse never scanned is not stored"
    from orderguard import cli
    assert cli.main(["feedback", "--verdicts", str(verdicts), "--db", str(db)]) == 2  # rows refused


def test_verdict_files_as_support_really_saves_them_read_or_fail_with_the_reason(
        scanned_world, tmp_path, capsys):
    """Excel for Mac ends lines in a bare CR; a European-locale Excel separates with ';';
    staff write 正常 or 确认刷单, mark a row 待定, and a second person overturns a verdict."""
    import duckdb

    from orderguard import cli

    db = _copy_warehouse(scanned_world, tmp_path)
    ids = _scanned_order_ids(db, 6)
    mac = tmp_path / "mac.csv"
    words = ["确认刷单", "正常", "False Positive", "ＦＰ", "待定", "yes"]
    mac.write_bytes(("order_id,verdict,note\r" + "".join(
        f"{o},{w},\r" for o, w in zip(ids, words, strict=True))).encode("utf-8"))
    with duckdb.connect(str(db)) as con:
        result = feedback.load_verdicts(con, mac)
    assert (result["stored"], result["rejected"], result["undecided"]) == (5, 0, 1)
    assert _stored(db) == {ids[0]: "confirmed", ids[1]: "false_positive", ids[2]: "false_positive",
                           ids[3]: "false_positive", ids[5]: "confirmed"}
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text(f"order_id;verdict\n{ids[1]};误报\n{ids[0]};误判\n", "utf-8")
    with duckdb.connect(str(db)) as con:
        overturned = feedback.load_verdicts(con, semicolons)
    assert overturned["stored"] == 2 and overturned["changed"] == 1
    assert overturned["notes"] == [f"{ids[0]} was confirmed ({mac}, row 1), now false_positive (row 2)"]
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(f"order_id,verdict\n{ids[0]},确认,note,extra,more\n", "utf-8")
    assert cli.main(["feedback", "--verdicts", str(ragged), "--db", str(db)]) == 2
    assert f"{ragged}: not a readable CSV" in capsys.readouterr().err
    titled = tmp_path / "titled.csv"
    titled.write_text(f"客服核实结果 2026-10-05\norder_id,verdict\n{ids[0]},确认\n", "utf-8")
    assert cli.main(["feedback", "--verdicts", str(titled), "--db", str(db)]) == 2
    assert "its first line is '客服核实结果 2026-10-05'" in capsys.readouterr().err


def test_feedback_on_a_missing_or_empty_file_is_an_input_error(tmp_path, capsys):
    import duckdb

    from orderguard import cli

    db = tmp_path / "wh.duckdb"
    duckdb.connect(str(db)).close()  # a warehouse, if an empty one
    assert cli.main(["feedback", "--verdicts", str(tmp_path / "nope.csv"), "--db", str(db)]) == 2
    assert "nope.csv: no such file" in capsys.readouterr().err
    (tmp_path / "empty.csv").write_text("", "utf-8")
    assert cli.main(["feedback", "--verdicts", str(tmp_path / "empty.csv"), "--db", str(db)]) == 2
    assert "empty.csv: the file is empty" in capsys.readouterr().err


def test_a_verdict_file_saved_by_chinese_excel_in_gbk_reads_as_written(scanned_world, tmp_path):
    import duckdb

    db = _copy_warehouse(scanned_world, tmp_path)
    ids = _scanned_order_ids(db, 2)
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_bytes(f"order_id,verdict,note\n{ids[0]},确认,刷单团伙\n{ids[1]},误报,老客户\n".encode("gbk"))
    with duckdb.connect(str(db)) as con:
        result = feedback.load_verdicts(con, verdicts)
        notes = dict(con.execute("select order_id, note from ops.verdicts").fetchall())
    assert (result["confirmed"], result["false_positive"], result["rejected"]) == (1, 1, 0)
    assert notes == {ids[0]: "刷单团伙", ids[1]: "老客户"}


def test_verdicts_the_rules_already_separate_do_not_let_the_model_flood_support(scanned_world, tmp_path):
    """Support confirms tonight's flags and, as invited, judges a sample of unflagged orders:
    the rules already rank those verdicts, so the model, which could then learn only when
    and where orders were, is not used, and tonight's list stays what the rules send."""
    import duckdb

    from orderguard.scan import ScanOptions, run_scan

    labels = pl.read_csv(scanned_world["labels"] / "orders.csv", infer_schema=False)
    scores = pl.read_parquet(scanned_world["out"] / "order_scores.parquet").join(labels, on="order_id")
    sample = pl.concat([scores.filter(pl.col("risk_level") != "low"),
                        scores.filter(pl.col("risk_level") == "low").sample(300, seed=1)])
    verdicts = tmp_path / "verdicts.csv"
    sample.select("order_id", pl.when(pl.col("is_fraud") == "1").then(pl.lit("confirmed"))
                  .otherwise(pl.lit("false_positive")).alias("verdict")).write_csv(verdicts)
    db = _copy_warehouse(scanned_world, tmp_path)
    with duckdb.connect(str(db)) as con:
        feedback.load_verdicts(con, verdicts)
    run = run_scan(ScanOptions(input_dir=scanned_world["input"], out_dir=tmp_path / "out", db_path=db,
                               models_dir=tmp_path / "models", run_date=None))
    assert "not used: it does not rank the later 30 % of them at least" in run["scoring"]["supervised"]
    after = pl.read_parquet(tmp_path / "out" / "order_scores.parquet")
    assert (after["supervised_points"] == 0).all()
    assert after.filter(pl.col("risk_level") != "low").height == scores.filter(
        pl.col("risk_level") != "low").height


def _clearance_world():
    """Buyer B cleared (false_positive) on night 2026-10-02, when support had been shown
    B's order O1 (SHARED_ADDRESS, FAST_PAY); O2 (RING_BRUSHING) was listed only after.
    C confirmed that night; D cleared by a verdict stored before any night was published."""
    import duckdb

    con = duckdb.connect()
    for schema in ("staging", "ops", "intermediate"):
        con.execute(f"create schema {schema}")
    con.execute("create table staging.orders_history as select * from (values "
                "('O1', 'B', '2026-10-02 08:00'::timestamp), ('O2', 'B', '2026-10-04 08:00'), "
                "('O3', 'C', '2026-10-01 08:00'), ('O4', 'D', '2026-10-01 08:00')) "
                "t(order_id, buyer_id, created_at)")
    con.execute("create table ops.published_flags as select * from (values "
                "('O1', '2026-10-02', ['SHARED_ADDRESS', 'FAST_PAY']), "
                "('O2', '2026-10-04', ['RING_BRUSHING']), ('O3', '2026-10-02', ['SHARED_DEVICE']), "
                "('O4', '2026-10-01', ['SHARED_DEVICE'])) t(order_id, night, reason_codes)")
    con.execute("create table intermediate.order_scores (order_id varchar, reason_codes varchar[])")
    feedback._ensure_table(con)
    con.execute("insert into ops.verdicts (order_id, account_id, verdict, received_at, night) values "
                "(null, 'B', 'false_positive', '2026-10-03 10:00', '2026-10-02'), "
                "(null, 'C', 'confirmed', '2026-10-03 10:00', '2026-10-02'), "
                "(null, 'D', 'false_positive', '2026-09-30 10:00', null)")
    return con


def test_a_cleared_account_covers_the_orders_support_saw_not_later_ones_or_new_reasons():
    """An account judged a false positive mutes (观察) only orders created by its night plus
    ACCOUNT_CLEARANCE_DAYS flagged for reasons support had been shown on the account; a later
    order, or a new reason such as a ring, is a new case. A confirmed account covers all."""
    con = _clearance_world()
    night_end = datetime(2026, 10, 3) + timedelta(days=feedback.ACCOUNT_CLEARANCE_DAYS)
    cases = {  # case: (buyer, created_at, reason codes, covered)
        "same reasons, same night": ("B", datetime(2026, 10, 2, 12), ["SHARED_ADDRESS"], True),
        "same reasons, within the days": ("B", night_end - timedelta(minutes=1),
                                          ["FAST_PAY", "SHARED_ADDRESS"], True),
        "a later order": ("B", night_end, ["SHARED_ADDRESS"], False),
        "a ring since": ("B", datetime(2026, 10, 2, 12), ["SHARED_ADDRESS", "RING_BRUSHING"], False),
        "confirmed account": ("C", datetime(2026, 12, 1), ["RING_SELF_REFERRAL"], True),
        "cleared before any night": ("D", datetime(2026, 10, 1, 9), ["SHARED_DEVICE"], False),
    }
    con.register("candidates", pl.DataFrame(
        [(k, b, t, c) for k, (b, t, c, _) in cases.items()],
        schema=["case", "buyer_id", "created_at", "reason_codes"], orient="row").to_arrow())
    covered = dict(con.execute(
        "with " + feedback.latest_verdicts_sql(con) + ", " + feedback.account_clearances_sql()
        + " select o.case, " + feedback.covered_by_account("pa", "o.created_at", "o.reason_codes")
        + " from candidates o join account_clearances pa on pa.account_id = o.buyer_id",
        {"clearance_days": feedback.ACCOUNT_CLEARANCE_DAYS}).fetchall())
    assert covered == {k: v[3] for k, v in cases.items()}


def test_verdicts_an_older_version_stored_get_the_night_support_judged_from():
    import duckdb

    con = duckdb.connect()
    con.execute("create schema ops")
    con.execute("create table ops.runs as select * from (values ('2026-10-01', '2026-10-02T01:00:00'), "
                "('2026-10-02', '2026-10-03T01:00:00')) t(run_date, finished_at)")
    con.execute("create table ops.verdicts (order_id varchar, account_id varchar, verdict varchar, "
                "note varchar, source_file varchar, source_row bigint, received_at timestamp)")
    con.execute("insert into ops.verdicts values (null, 'B', 'false_positive', null, 'v.csv', 1, "
                "'2026-10-02 15:00'), (null, 'C', 'false_positive', null, 'v.csv', 2, '2026-10-01 15:00')")
    feedback.upgrade_verdicts(con)
    assert dict(con.execute("select account_id, night from ops.verdicts").fetchall()) == {
        "B": "2026-10-01", "C": None}
