import re

import polars as pl
import pytest

from orderguard.rules import RuleConfigError, load_rules, rule_hits


def test_every_rule_has_chinese_and_english_text():
    ruleset = load_rules()
    for code, rule in ruleset.rules.items():
        assert rule.zh and rule.zh != code, code
        assert any("\u4e00" <= ch <= "\u9fff" for ch in rule.zh), code
        assert rule.en and rule.en != code, code


def test_one_weak_signal_alone_stays_below_the_flag_threshold():
    ruleset = load_rules()
    import math

    scale = ruleset.scoring["scale"]
    flag = ruleset.scoring["flag_threshold"]
    for rule in ruleset.rules.values():
        if rule.family in ("ring", "logistics") or rule.max_points == 0:
            continue
        assert 1 - math.exp(-rule.max_points / scale) < flag, rule.code


def test_rules_fire_with_their_conditions_and_name_reasons_strongest_first():
    features = pl.DataFrame(
        {
            "shop_id": ["S1", "S1", "S2"],
            "device_accounts": [6, 1, 9],
            "pay_delay_s": [1, 100, None],
            "ship_to_deliver_h": [1.0, 1.0, 30.0],
            "is_virtual": [False, True, False],
        }
    )
    hits = rule_hits(features, load_rules())
    assert hits["SHARED_DEVICE"].to_list() == [True, False, True]
    assert hits["FAST_DELIVERY"].to_list() == [True, False, False]  # virtual goods exempt
    assert hits["reason_codes"][0].to_list() == [
        "SHARED_DEVICE", "FAST_DELIVERY", "FAST_PAY", "DEVICE_SHARED"
    ]
    assert hits["rule_points"][1] == 0


def test_a_fact_two_rules_read_counts_once_so_one_household_link_never_flags():
    """A household member buying through a relative's share link: the buyer is linked to
    the distributor (REFERRER_SHARES_ID) and so the commission flows within one identity
    group (COMMISSION_TO_SELF). One link is one piece of evidence, as is one account age read
    by INSTANT_ORDER and NEW_ACCOUNT_ORDER; both codes stay in the reasons."""
    import math

    ruleset = load_rules()
    features = pl.DataFrame({
        "shop_id": ["S1", "S1"],
        "referrer_link_weight": [0.8, 0.8], "self_commission_level": [1, 1],
        "account_age_s": [30, 30], "account_age_days": [0.0003, 0.0003],
        "pay_delay_s": [100, 1],  # the second order adds an independent family: fast pay
    })
    hits = rule_hits(features, ruleset)
    rules = ruleset.rules
    link = max(rules["REFERRER_SHARES_ID"].points, rules["COMMISSION_TO_SELF"].points)
    age = max(rules["INSTANT_ORDER"].points, rules["NEW_ACCOUNT_ORDER"].points)
    assert hits["rule_points"].to_list() == pytest.approx([link + age, link + age + rules["FAST_PAY"].points])
    assert {"REFERRER_SHARES_ID", "COMMISSION_TO_SELF", "INSTANT_ORDER", "NEW_ACCOUNT_ORDER"} <= set(
        hits["reason_codes"][0])
    score = 1 - math.exp(-link / ruleset.scoring["scale"])
    assert score < ruleset.scoring["flag_threshold"]


def test_shop_override_changes_the_threshold_for_that_shop_only(tmp_path):
    base = (load_rules().source, None)
    assert base
    from importlib import resources

    text = resources.files("orderguard").joinpath("rules.toml").read_text("utf-8")
    text += "\n[shops.S2.rules.SHARED_DEVICE]\nthreshold = 20\n"
    path = tmp_path / "rules.toml"
    path.write_text(text, "utf-8")
    features = pl.DataFrame({"shop_id": ["S1", "S2"], "device_accounts": [9, 9]})
    hits = rule_hits(features, load_rules(path))
    assert hits["SHARED_DEVICE"].to_list() == [True, False]


GOOD = '[rules.X]\nfeature = "a"\nop = ">="\nthreshold = 1\npoints = 1.0\n'


@pytest.mark.parametrize("edit, says", [
    (('op = ">="', 'op = "=>"'), r"rule X: unknown op '=>'"),
    (('threshold = 1', 'treshold = 1'), r"rule X: unknown key 'treshold' \(did you mean 'threshold'\?\)"),
    (('points = 1.0\n', ''), r"rule X: missing 'points'"),
    (('threshold = 1', 'threshold = "five"'), r"rule X: threshold: 'five' is not a number"),
    (('points = 1.0', 'points = "2"'), r"rule X: points: '2' is not a number"),
    (('[rules.X]', '[scoring]\nflag_treshold = 0.5\n[rules.X]'), r"\[scoring\]: unknown key 'flag_treshold'"),
    (('points = 1.0', 'points = 1.0\n[shops.S1.rules.Y]\nthreshold = 2'),
     r"shop S1 overrides rules \['Y'\], which this file does not define"),
    (('[rules.X]', '[scoring]\nflag_threshold = 60\n[rules.X]'),
     r"\[scoring\] flag_threshold = 60 must be between 0 and 1 \(a score, 0.6 for 60 %\)"),
    (('[rules.X]', '[scoring]\nflag_threshold = 0.9\n[rules.X]'),
     r"\[scoring\] flag_threshold must not be above high_threshold"),
    ((GOOD, '[scoring]\nflag_threshold = 0.5\n'), r"no \[rules.<CODE>\] tables: a rules file replaces"),
    (('[rules.X]', '[scoring]\nsupervised_max_points = 3.0\n[rules.X]'),
     r"\[scoring\] supervised_max_points = 3.0 would flag an order on the model alone \(score 0.70\)"),
    (('[rules.X]', '[scoring]\nflag_threshold = 0.5\n[rules.X]'),
     r"\[scoring\] supervised_max_points = 2.0 \(its default\) would flag an order on the model alone"),
    (('points = 1.0', 'points = 1.0\n[shops.S1.rules.X]\nthreshhold = 2'),
     r"shop S1 rule X: unknown key 'threshhold'"),
    (('points = 1.0', 'points = 1.0\n[shops.S1.rules.X]\nthreshold = "lots"'),
     r"shop S1 rule X: threshold: 'lots'"),
    (('feature = "a"', 'feature = "a"\nalso = [{ feature = "b", op = "==", threshold = true, points = 2 }]'),
     r"rule X: also: unknown key 'points'"),
])
def test_a_mistake_in_a_rules_file_names_the_file_rule_and_key(tmp_path, edit, says):
    """A misspelt or mistyped rule would otherwise be ignored (the rule then runs on its
    default) or fail hours into the scan: it is refused on loading, before any work."""
    assert load_rules_text(tmp_path, GOOD).rules["X"].points == 1.0
    path = tmp_path / "rules.toml"
    with pytest.raises(RuleConfigError, match=re.escape(str(path)) + ": " + says):
        load_rules_text(tmp_path, GOOD.replace(*edit))


def load_rules_text(folder, text: str):
    path = folder / "rules.toml"
    path.write_text(text, "utf-8")
    return load_rules(path)


def test_scan_with_a_broken_or_missing_rules_file_exits_2_before_any_work(tmp_path, capsys):
    from orderguard import cli

    rules = tmp_path / "rules.toml"
    rules.write_text(GOOD.replace('op = ">="', 'op = "=>"'), "utf-8")
    (tmp_path / "in").mkdir()
    scan = ["scan", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
            "--db", str(tmp_path / "wh.duckdb"), "--no-prefect"]
    assert cli.main([*scan, "--rules", str(rules)]) == 2
    assert f"{rules}: rule X: unknown op '=>'" in capsys.readouterr().err
    assert cli.main([*scan, "--rules", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: cannot read the rules file" in capsys.readouterr().err
    assert not (tmp_path / "wh.duckdb").exists()


def test_ordering_at_once_alone_is_weak_but_a_batch_of_new_accounts_behind_one_device_flags():
    import math

    ruleset = load_rules()
    features = pl.DataFrame(
        {
            "shop_id": ["S1"] * 4,
            "account_age_days": [0.0, 0.0, 0.0, 2.0],
            "account_age_s": [30, 30, 600, 172800],
            "instant_siblings": [0, 3, 3, 0],  # other accounts on its device ordered at once
            "device_accounts": [1, 4, 4, 2],
        }
    )
    hits = rule_hits(features, ruleset)
    assert hits["INSTANT_ORDER"].to_list() == [True, True, False, False]
    # the batch rule needs the account itself to have ordered at once
    assert hits["NEW_ACCOUNT_BATCH"].to_list() == [False, True, False, False]
    assert hits["DEVICE_SHARED"].to_list() == [False, True, True, True]
    score = [1 - math.exp(-p / ruleset.scoring["scale"]) for p in hits["rule_points"]]
    flag = ruleset.scoring["flag_threshold"]
    assert score[0] < flag <= score[1]
    assert score[2] < flag and score[3] < flag


def test_a_graded_rule_scales_its_points_with_the_strength_of_the_evidence(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        '[rules.CROWDED]\nzh = "设备拥挤"\nen = "crowded device"\nfeature = "device_accounts"\n'
        'op = ">="\nthreshold = 5\npoints = 1.0\n'
        'grade = { feature = "device_accounts", weak = 5, strong = 25, max_points = 2.0 }\n',
        "utf-8",
    )
    features = pl.DataFrame({"device_accounts": [4, 5, 15, 25, 400, None]})
    hits = rule_hits(features, load_rules(path))
    assert hits["rule_points"].to_list() == [0.0, 1.0, 1.5, 2.0, 2.0, 0.0]
    assert hits["reason_codes"].to_list()[2] == ["CROWDED"]


def test_a_grade_without_a_range_is_a_clear_error(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        '[rules.X]\nfeature = "a"\nop = ">"\nthreshold = 1\npoints = 1.0\n'
        'grade = { feature = "a", weak = 1, strong = 1, max_points = 2.0 }\n',
        "utf-8",
    )
    with pytest.raises(RuleConfigError, match="weak != strong"):
        load_rules(path)


def test_the_fewer_orders_an_account_has_the_more_its_thin_history_counts_but_never_flags():
    import math

    ruleset = load_rules()
    features = pl.DataFrame({"shop_id": ["S1"] * 4, "buyer_orders": [1, 2, 5, 30]})
    hits = rule_hits(features, ruleset)
    points = hits["rule_points"].to_list()
    assert hits["THIN_HISTORY"].to_list() == [True, True, True, False]
    assert points[0] > points[1] > points[2] > points[3] == 0.0
    # a one-shot account is how every first-time customer of a promotion looks: it only
    # orders the list, far below what a flag needs even beside another weak signal
    assert 1 - math.exp(-(points[0] + 1.0) / ruleset.scoring["scale"]) < ruleset.scoring["flag_threshold"]


def test_reason_codes_list_every_rule_that_fired_in_the_given_order():
    import random

    from orderguard.rules import reason_lists

    random.seed(3)
    codes = [f"R{i}" for i in range(70)]
    hits = pl.DataFrame({c: [random.random() < 0.3 for _ in range(200)] for c in codes})
    want = [[c for c in codes[:10] if row[c]] for row in hits.iter_rows(named=True)]
    assert reason_lists(hits, codes[:10]).to_list() == want  # through bit masks
    assert reason_lists(hits, codes).to_list() == [  # more rules than a mask holds
        [c for c in codes if row[c]] for row in hits.iter_rows(named=True)]
    assert reason_lists(hits, []).to_list() == [[]] * 200
