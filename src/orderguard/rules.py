"""Reason-coded rules from a TOML file, applied to whole columns with Polars."""

from __future__ import annotations

import difflib
import math
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from orderguard import config

_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


class RuleConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    feature: str
    op: str
    threshold: Any


@dataclass(frozen=True)
class Grade:
    """Scale a rule's points by the strength of its evidence: `points` at `weak`, rising
    linearly to `max_points` at `strong` (either side of `weak`), capped there. Orders with
    the same rules then rank by how strong the evidence is, not in arbitrary tied blocks."""

    feature: str
    weak: float
    strong: float
    max_points: float

    def strength(self) -> pl.Expr:
        return ((pl.col(self.feature) - self.weak) / (self.strong - self.weak)).clip(0.0, 1.0).fill_null(0.0)


@dataclass(frozen=True)
class Rule:
    code: str
    zh: str
    en: str
    family: str
    condition: Condition
    points: float
    also: tuple[Condition, ...] = ()
    target: str = "buyer"  # "shop": evidence against the shop/programme, not the buyer
    grade: Grade | None = None
    # rules reading one fact (the buyer's account age; the buyer-beneficiary link) name it
    # alike: the fact counts once, at its strongest rule's points
    fact: str | None = None

    @property
    def max_points(self) -> float:
        return self.points if self.grade is None else self.grade.max_points


@dataclass
class RuleSet:
    rules: dict[str, Rule]
    scoring: dict[str, float]
    shop_overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    source: str = "package default"

    def text(self, code: str, lang: str = "zh") -> str:
        rule = self.rules.get(code)
        return code if rule is None else getattr(rule, lang)


# what a rules file may say: a misspelt key (`treshold`) would otherwise be ignored and the
# rule run on its default, with nothing to say so
RULE_KEYS = {"zh", "en", "family", "feature", "op", "threshold", "points", "also", "target",
             "grade", "fact"}
CONDITION_KEYS = {"feature", "op", "threshold"}
GRADE_KEYS = {"feature", "weak", "strong", "max_points"}
OVERRIDE_KEYS = {"threshold", "points"}
SCORING_KEYS = {"scale", "flag_threshold", "high_threshold", "forest_max_points", "forest_top_share",
                "forest_tie_points", "supervised_max_points", "min_verdicts"}
TARGETS = {"buyer", "shop"}
# the most points each model may add when a rules file does not say: the scorer reads these
MODEL_MAX_POINTS = {"forest_max_points": 1.0, "supervised_max_points": 2.0}


def model_max_points(scoring: dict, key: str) -> float:
    """The most points a model adds ([scoring] forest_max_points or supervised_max_points)."""
    return float(scoring.get(key, MODEL_MAX_POINTS[key]))


# (lowest, highest) a [scoring] value may take; scores and shares are 0..1, the rest >= 0
SCORING_RANGES = {"scale": (0.01, None), "flag_threshold": (0, 1), "high_threshold": (0, 1),
                  "forest_top_share": (0, 1)}


def _check_keys(where: str, spec: Any, allowed: set[str]) -> None:
    if problem := config.toml_key_problem(where, spec, allowed):
        raise RuleConfigError(problem)


def _number(where: str, value: Any) -> float:
    if not config.is_toml_number(value):
        raise RuleConfigError(f"{where}: {value!r} is not a number")
    return float(value)


def _condition(code: str, spec: dict) -> Condition:
    try:
        op = spec["op"]
        if op not in _OPS:
            raise RuleConfigError(f"rule {code}: unknown op {op!r} (known: {' '.join(_OPS)})")
        threshold = spec["threshold"]
        if not isinstance(threshold, bool):
            threshold = _number(f"rule {code}: threshold", threshold)
        elif op not in ("==", "!="):
            raise RuleConfigError(f"rule {code}: a true/false threshold needs op == or !=")
        if not isinstance(spec["feature"], str) or not spec["feature"]:
            raise RuleConfigError(f"rule {code}: feature must name a feature column")
        return Condition(spec["feature"], op, threshold)
    except KeyError as exc:
        raise RuleConfigError(f"rule {code}: missing {exc.args[0]!r}") from exc


def _grade(code: str, spec: dict | None, points: float) -> Grade | None:
    if spec is None:
        return None
    _check_keys(f"rule {code}: grade", spec, GRADE_KEYS)
    try:
        grade = Grade(spec["feature"], *(_number(f"rule {code}: grade {k}", spec[k])
                                         for k in ("weak", "strong", "max_points")))
    except KeyError as exc:
        raise RuleConfigError(f"rule {code}: grade is missing {exc.args[0]!r}") from exc
    if grade.weak == grade.strong or grade.max_points < points:
        raise RuleConfigError(f"rule {code}: grade needs weak != strong and max_points >= points")
    return grade


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Read and check a rules file. Every mistake (a file that cannot be read, bad TOML, an
    unknown or misspelt key, a missing or non-numeric points or threshold, an override of a
    rule that does not exist) is a RuleConfigError naming the file, the rule and the key,
    raised before a scan does any work."""
    data, source = config.read_settings_toml(path, "rules.toml", "package default", "rules file",
                                             RuleConfigError)
    try:
        return _parse_rules(data, source)
    except RuleConfigError as exc:
        raise RuleConfigError(f"{source}: {exc}") from None


def _parse_rules(data: dict, source: str) -> RuleSet:
    _check_keys("the file", data, {"scoring", "rules", "shops"})
    if not data.get("rules"):
        raise RuleConfigError("no [rules.<CODE>] tables: a rules file replaces the packaged one "
                              "whole, so copy src/orderguard/rules.toml and change what you need")
    scoring = data.get("scoring", {})
    _check_keys("[scoring]", scoring, SCORING_KEYS)
    for key, value in scoring.items():
        _number(f"[scoring] {key}", value)
        low, high = SCORING_RANGES.get(key, (0, None))
        if value < low or (high is not None and value > high):
            within = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise RuleConfigError(f"[scoring] {key} = {value!r} must be {within}"
                                  + (" (a score, 0.6 for 60 %)" if high == 1 else ""))
    if scoring.get("flag_threshold", 0.6) > scoring.get("high_threshold", 0.8):
        raise RuleConfigError("[scoring] flag_threshold must not be above high_threshold")
    for key in MODEL_MAX_POINTS:
        # one weak signal never flags an order on its own: nor does one model
        points = model_max_points(scoring, key)
        alone = 1 - math.exp(-points / scoring.get("scale", 2.5))
        if alone >= scoring.get("flag_threshold", 0.6):
            raise RuleConfigError(f"[scoring] {key} = {points!r}{'' if key in scoring else ' (its default)'} "
                                  f"would flag an order on the model alone (score {alone:.2f}); keep it "
                                  "below the flag threshold")
    rules = {}
    for code, spec in data.get("rules", {}).items():
        _check_keys(f"rule {code}", spec, RULE_KEYS)
        if "points" not in spec:
            raise RuleConfigError(f"rule {code}: missing 'points'")
        points = _number(f"rule {code}: points", spec["points"])
        for extra in spec.get("also", []):
            _check_keys(f"rule {code}: also", extra, CONDITION_KEYS)
        target = spec.get("target", "buyer")
        if target not in TARGETS:
            raise RuleConfigError(f"rule {code}: target {target!r} is not one of {sorted(TARGETS)}")
        rules[code] = Rule(
            code=code,
            zh=spec.get("zh", code),
            en=spec.get("en", code),
            family=spec.get("family", "other"),
            condition=_condition(code, spec),
            points=points,
            also=tuple(_condition(code, c) for c in spec.get("also", [])),
            target=target,
            grade=_grade(code, spec.get("grade"), points),
            fact=spec.get("fact"),
        )
    overrides = {}
    for shop, body in data.get("shops", {}).items():
        _check_keys(f"shop {shop}", body, {"rules"})
        overrides[shop] = body.get("rules", {})
        unknown = set(overrides[shop]) - set(rules)
        if unknown:
            raise RuleConfigError(f"shop {shop} overrides rules {sorted(unknown)}, which this file "
                                  "does not define (a rules file replaces the packaged one whole)")
        for code, override in overrides[shop].items():
            _check_keys(f"shop {shop} rule {code}", override, OVERRIDE_KEYS)
            for key, value in override.items():
                if not (key == "threshold" and isinstance(value, bool)):
                    _number(f"shop {shop} rule {code}: {key}", value)
    return RuleSet(rules, dict(scoring), overrides, source)


def check_features(ruleset: RuleSet, columns: list[str], where: str) -> None:
    """Refuse rules reading a feature `columns` lacks: a misspelt feature would otherwise
    switch its rule off without a word (rule_hits reads a missing feature as never true, for
    stored nights older than a feature)."""
    for code, rule in ruleset.rules.items():
        for feature in (c.feature for c in (rule.condition, *rule.also)):
            if feature not in columns:
                near = difflib.get_close_matches(feature, sorted(columns), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise RuleConfigError(f"{ruleset.source}: rule {code}: no feature {feature!r} "
                                      f"in {where}{hint}")


def _compare(cond: Condition, threshold: pl.Expr) -> pl.Expr:
    return _OPS[cond.op](pl.col(cond.feature), threshold).fill_null(False)


def rule_hits(features: pl.DataFrame, ruleset: RuleSet) -> pl.DataFrame:
    """grain: one row per input row. One boolean column per rule code plus `rule_points`,
    `buyer_rule_points` (only evidence against the buyer) and `reason_codes` (codes that
    fired, strongest first)."""
    exprs = []
    for code, rule in ruleset.rules.items():
        missing = [c.feature for c in (rule.condition, *rule.also) if c.feature not in features.columns]
        if missing:
            exprs.append(pl.lit(False).alias(code))
            continue
        threshold: pl.Expr = pl.lit(rule.condition.threshold)
        for shop, body in ruleset.shop_overrides.items():
            if code in body and "threshold" in body[code]:
                threshold = (
                    pl.when(pl.col("shop_id") == shop)
                    .then(pl.lit(body[code]["threshold"]))
                    .otherwise(threshold)
                )
        hit = _compare(rule.condition, threshold)
        for extra in rule.also:
            hit = hit & _compare(extra, pl.lit(extra.threshold))
        exprs.append(hit.alias(code))
    graded = sorted({r.grade.feature for r in ruleset.rules.values() if r.grade} & set(features.columns))
    carried = list(dict.fromkeys(c for c in ("shop_id", *graded) if c in features.columns))
    hits = features.select([*carried, *exprs])
    point_terms: dict[str, list[pl.Expr]] = {}  # by fact (a rule without one is its own)
    buyer_terms: dict[str, list[pl.Expr]] = {}
    for code, rule in ruleset.rules.items():
        points: pl.Expr = pl.lit(rule.points)
        for shop, body in ruleset.shop_overrides.items():
            if code in body and "points" in body[code]:
                override = pl.lit(float(body[code]["points"]))
                points = pl.when(pl.col("shop_id") == shop).then(override).otherwise(points)
        if rule.grade is not None and rule.grade.feature in graded:
            points = points + (rule.grade.max_points - rule.points) * rule.grade.strength()
        term = pl.when(pl.col(code)).then(points).otherwise(0.0)
        point_terms.setdefault(rule.fact or code, []).append(term)
        if rule.target != "shop":
            buyer_terms.setdefault(rule.fact or code, []).append(term)
    ordered = sorted(ruleset.rules.values(), key=lambda r: (-r.points, r.code))
    hits = hits.with_columns(
        pl.sum_horizontal([pl.max_horizontal(t) for t in point_terms.values()]).alias("rule_points"),
        pl.sum_horizontal([pl.max_horizontal(t) for t in buyer_terms.values()]).alias("buyer_rule_points"),
    ).drop(carried)
    return hits.with_columns(reason_lists(hits, [r.code for r in ordered]))


def reason_lists(hits: pl.DataFrame, codes: list[str]) -> pl.Series:
    """`reason_codes`: per row, the codes (in the given order) whose boolean column is true.
    Rows share few distinct combinations, so each combination's list is built once and
    looked up through a bit mask: building a list per row took ~6 s per million orders."""
    if len(codes) > 62:  # more rules than bits in a mask: build each row's list
        return hits.select(pl.concat_list(
            [pl.when(pl.col(c)).then(pl.lit(c)).otherwise(pl.lit(None, pl.String)) for c in codes]
        ).list.drop_nulls().alias("reason_codes")).to_series()
    if not codes:
        return pl.Series("reason_codes", [[]] * hits.height, dtype=pl.List(pl.String))
    masks = hits.select(
        pl.sum_horizontal([pl.col(c).cast(pl.Int64) * (1 << i) for i, c in enumerate(codes)]).alias("mask")
    )
    combos = masks["mask"].unique().sort().to_list()
    lookup = pl.DataFrame({
        "mask": pl.Series(combos, dtype=pl.Int64),
        "reason_codes": pl.Series([[c for i, c in enumerate(codes) if m >> i & 1] for m in combos],
                                  dtype=pl.List(pl.String)),
    })
    return masks.join(lookup, on="mask", how="left", maintain_order="left")["reason_codes"]
