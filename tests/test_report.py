"""report.html as a risk lead sees it: opened in a real (headless) Chromium, two nights in a
row, Chinese labels, hostile text kept inert; and the run's Prefect artifacts."""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
import warnings
from pathlib import Path

import polars as pl
import pytest

from orderguard import charts, graphs, warehouse

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def night_inputs(full: Path, labels: Path, night1: Path) -> dict:
    """Night 1 is the export before one brushing ring started and before 4 accounts joined
    another: the first ring is new on night 2, the second one grows."""
    rings = pl.read_csv(labels / "rings.csv", infer_schema=False).filter(pl.col("kind") == "brushing")
    rings = rings.sort("ring_id")
    late = rings["members"][-1].split(";")
    joiners = sorted(rings["members"][0].split(";"))[:4]
    drop = sorted(set(late) | set(joiners))
    night1.mkdir(parents=True)
    orders = pl.read_csv(full / "orders.csv", infer_schema=False)
    kept = orders.filter(~pl.col("buyer_id").is_in(drop))
    kept.write_csv(night1 / "orders.csv")
    accounts = pl.read_csv(full / "accounts.csv", infer_schema=False)
    accounts.filter(~pl.col("account_id").is_in(drop)).write_csv(night1 / "accounts.csv")
    commissions = pl.read_csv(full / "commissions.csv", infer_schema=False)
    commissions = commissions.filter(pl.col("order_id").is_in(kept["order_id"].implode()))
    commissions.write_csv(night1 / "commissions.csv")
    shutil.copy(full / "products.csv", night1 / "products.csv")
    last = dt.date.fromisoformat(orders["created_at"].str.slice(0, 10).max())
    return {"late": set(late), "joiners": set(joiners), "night2": last.isoformat(),
            "night1": (last - dt.timedelta(days=1)).isoformat()}


@pytest.fixture(scope="session")
def two_nights(tmp_path_factory) -> dict:
    """A 1,500-account world scanned on two successive nights into one warehouse and one
    output folder, then night 2 scanned again (a rerun)."""
    from orderguard.generate import generate_to_folders
    from orderguard.scan import ScanOptions, run_scan

    root = tmp_path_factory.mktemp("two_nights")
    generate_to_folders(root / "full", root / "labels", accounts=1500, seed=11, preset="default")
    plan = night_inputs(root / "full", root / "labels", root / "night1")
    runs = {}
    for name, folder in (("night1", root / "night1"), ("night2", root / "full"), ("rerun", root / "full")):
        opts = ScanOptions(input_dir=folder, out_dir=root / "out", db_path=root / "wh.duckdb",
                           models_dir=root / "models", run_id=f"two-{name}",
                           run_date=plan["night2" if name == "rerun" else name])
        runs[name] = run_scan(opts)
        if name == "night2":
            shutil.copytree(root / "out" / "nights" / plan["night2"], root / "night2-first")
    return {**plan, "root": root, "out": root / "out", "db": root / "wh.duckdb", "runs": runs}


def rings_of(folder: Path) -> dict[str, tuple[str, frozenset]]:
    frame = pl.read_csv(folder / "rings.csv", infer_schema=False)
    return {r["ring_id"]: (r["kind"], frozenset(r["members"].split(";")))
            for r in frame.iter_rows(named=True)}


def section_of(page: str, anchor: str) -> str:
    start = page.index(f"<section id='{anchor}'>")
    return page[start:page.index("</section>", start)]


# ----------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, path: Path, screenshot: Path | None = None) -> dict:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console",
            lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate(
        "Array.from(document.images)"
        ".map(i => ({alt: i.alt, cls: i.className, ok: i.complete, w: i.naturalWidth}))"
    )
    text = page.inner_text("body")
    if screenshot:
        page.screenshot(path=str(screenshot), full_page=False)
    page.close()
    return {"images": images, "problems": problems, "text": text,
            "requests": [u for u in requests if not u.startswith(("file:", "data:"))]}


def test_the_report_renders_in_headless_chromium_with_charts_ring_drawings_and_chinese(
        browser, two_nights):
    report = two_nights["out"] / "report.html"
    shot = two_nights["root"] / "report.png"
    seen = open_page(browser, report, shot)
    assert not seen["problems"], seen["problems"]
    assert not seen["requests"], f"the report fetched {seen['requests']}: it must work offline"
    assert all(i["ok"] and i["w"] > 0 for i in seen["images"]), seen["images"]
    charts_drawn = [i for i in seen["images"] if i["cls"] == "chart"]
    drawings = [i for i in seen["images"] if i["cls"] == "ring-drawing"]
    assert len(charts_drawn) >= 3 and drawings, seen["images"]
    for words in ("今晚概况", "评分分布", "重点团伙", "各店铺", "历史趋势", "新出现团伙"):
        assert words in seen["text"]
    rings = pl.read_csv(two_nights["out"] / "rings.csv", infer_schema=False)  # beside report.html
    top = rings.sort(pl.col("gmv").cast(pl.Float64), descending=True).row(0, named=True)
    assert top["evidence_zh"] and top["evidence_zh"] in seen["text"], "a ring's evidence in Chinese"
    assert shot.stat().st_size > 20_000  # kept in the fixture's tmp folder for a look by eye


def test_hostile_names_and_evidence_stay_text_in_the_browser(browser, scanned_world, tmp_path):
    from orderguard.report import write_report
    from orderguard.rules import load_rules

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    evil = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    with warehouse.connect(db) as con, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        con.execute("update marts.rings set evidence = $e, evidence_zh = $e", {"e": evil})
        con.execute("update marts.order_scores set shop_id = $e where shop_id = 'S0001'", {"e": evil})
        write_report(con, tmp_path / "report.html", scanned_world["run"], load_rules(),
                     extra_sections=["<section id='extra'><h2>分销健康 extra</h2></section>"])
    assert not [str(w.message) for w in caught if "missing from" in str(w.message)], "tofu in a chart"
    page = (tmp_path / "report.html").read_text("utf-8")
    assert "<script>alert" not in page and "<img src=x" not in page
    assert html.escape(evil) in page
    assert page.index("<section id='extra'>") < page.index("<section id='history'>")
    seen = open_page(browser, tmp_path / "report.html")
    assert not seen["problems"], seen["problems"]
    assert "<script>alert('x')</script>" in seen["text"], "shown as text, not run"


# ----------------------------------------------------------------------------- two nights


def test_a_ring_present_both_nights_keeps_its_id_though_members_joined(two_nights):
    night1 = rings_of(two_nights["out"] / "nights" / two_nights["night1"])
    night2 = rings_of(two_nights["out"] / "nights" / two_nights["night2"])
    carried = [rid for rid in night1 if rid in night2 and night1[rid][1] != night2[rid][1]]
    assert carried, "the ring that grew by 4 accounts kept its night-1 id"
    for rid in carried:
        kind, members = night2[rid]
        assert members & two_nights["joiners"]
        assert rid != graphs.ring_id_for(kind, tuple(sorted(members))), "id inherited, not recomputed"
    unchanged = [rid for rid in night1 if rid in night2 and night1[rid] == night2[rid]]
    assert unchanged, "rings identical on both nights keep their id"


def test_the_second_nights_report_shows_the_trend_and_its_new_rings(two_nights):
    page = (two_nights["out"] / "report.html").read_text("utf-8")
    night1 = rings_of(two_nights["out"] / "nights" / two_nights["night1"])
    night2 = rings_of(two_nights["out"] / "nights" / two_nights["night2"])
    new = [rid for rid, (_, members) in night2.items() if rid not in night1]
    assert new and any(night2[rid][1] & two_nights["late"] for rid in new)
    history = section_of(page, "history")
    assert "<img class='chart'" in history
    dates = re.findall(r"<td>(\d{4}-\d{2}-\d{2})</td>", history)
    assert dates == [two_nights["night2"], two_nights["night1"]], "two nights of history, newest first"
    changes = section_of(page, "changes")
    table = changes[changes.index("<div id='new-rings'>"):changes.index("<div id='returned-rings'>")]
    assert set(re.findall(r"<td>([A-Z]{2}-[0-9a-f]{8}(?:-2)?)</td>", table)) == set(new)
    assert two_nights["night1"] in changes
    summary = two_nights["runs"]["night2"]["publish"]
    assert summary["rings_new"] == len(new) and summary["previous_night"] == two_nights["night1"]
    with warehouse.connect(two_nights["db"], read_only=True) as con:
        runs = warehouse.query(con, "select run_date from ops.runs order by 1")["run_date"].to_list()
    assert runs == [two_nights["night1"], two_nights["night2"]]


def test_rerunning_a_night_republishes_byte_identical_files(two_nights):
    first = two_nights["root"] / "night2-first"
    again = two_nights["out"] / "nights" / two_nights["night2"]
    for name in ("order_scores.parquet", "flagged_orders.csv", "flagged_orders.xlsx", "verdicts_template.csv",
                 "flagged_accounts.csv", "rings.csv", "quarantine.csv"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name


# ----------------------------------------------------------------------------- charts


def test_charts_draw_chinese_labels_with_a_cjk_font_and_no_missing_glyphs():
    import networkx as nx
    import numpy as np

    installed = any("cjk" in Path(p).name.lower() for p in charts.font_manager.findSystemFonts())
    if installed:
        assert charts.cjk_font(), "a CJK font is installed but matplotlib was not pointed at it"
    graph = nx.Graph()
    graph.add_node("U1", kind="account")
    graph.add_node("U2", kind="account")
    graph.add_node("device:abc", kind="device")
    graph.add_edges_from([("U1", "device:abc"), ("U2", "device:abc")])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        charts.score_histogram(np.linspace(0, 1, 200), 0.6, 0.8)
        charts.ring_drawing(graph, charts.label("刷单团伙 BR-1", "brushing BR-1"), "U1")
        charts.trend_chart(["2026-10-29", "2026-10-30"], [10, 12], [4, 5], [2, 3])
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    assert not missing, missing
    assert charts.label("中文", "en") == ("中文" if charts.cjk_font() else "en")


def test_a_farm_on_shared_identifiers_is_drawn_as_one_group_and_a_large_ring_says_what_it_left_out():
    import networkx as nx
    from matplotlib.figure import Figure

    farm = nx.Graph()
    farm.add_node("U0", kind="account")  # the owner, on the same device: never folded
    farm.add_node("device:d1", kind="device")
    farm.add_node("ip:i1", kind="ip")
    farm.add_edge("U0", "device:d1")
    for i in range(1, 39):
        farm.add_node(f"U{i}", kind="account")
        farm.add_edges_from([(f"U{i}", "device:d1"), (f"U{i}", "ip:i1")])
    farm.add_node("U39", kind="account")
    farm.add_edge("U39", "device:d1")
    farm.add_edge("U0", "U39", kind="invite")
    folded = charts.fold_alike_accounts(farm, owner="U0")
    groups = [d for _, d in folded.nodes(data=True) if d["kind"] == "group"]
    assert [g["size"] for g in groups] == [38]
    assert {"U0", "U39"} <= set(folded) and folded.edges["U0", "U39"]["kind"] == "invite"
    assert folded.degree(next(n for n, d in folded.nodes(data=True) if d["kind"] == "group")) == 2
    ax = Figure().subplots()
    assert charts.draw_ring(ax, farm, owner="U0", english=True) == ""  # all 40 drawn
    labels = {t.get_text() for t in ax.texts}
    assert "38 accounts" in labels and "device 1" in labels and "d1" not in " ".join(labels)

    chain = nx.path_graph([f"U{i:03d}" for i in range(60)])  # 60 accounts, no two alike
    nx.set_node_attributes(chain, "account", "kind")
    nx.set_edge_attributes(chain, "invite", "kind")
    note = charts.draw_ring(Figure().subplots(), chain, english=True)
    assert note == f"{charts.MAX_DRAWN_ACCOUNTS} of 60 accounts drawn, most connected first"


# ----------------------------------------------------------------------------- Prefect artifacts


def test_the_flow_publishes_a_summary_a_ring_table_and_a_link_as_artifacts(two_nights, monkeypatch):
    from pipelines import nightly_scan

    made = {}
    monkeypatch.setattr(nightly_scan, "create_markdown_artifact", lambda **kw: made.setdefault("md", kw))
    monkeypatch.setattr(nightly_scan, "create_table_artifact", lambda **kw: made.setdefault("table", kw))
    monkeypatch.setattr(nightly_scan, "create_link_artifact", lambda **kw: made.setdefault("link", kw))
    run = two_nights["runs"]["night2"]
    nightly_scan.publish_artifacts.fn(run)
    assert made["md"]["key"] == "nightly-scan-summary"
    assert f"{run['publish']['orders_flagged']:,}" in made["md"]["markdown"]
    assert "new tonight" in made["md"]["markdown"]
    assert made["table"]["table"] and {"ring_id", "kind", "gmv"} <= set(made["table"]["table"][0])
    assert made["link"]["link"].startswith("file://") and made["link"]["link"].endswith("/report.html")
    assert Path(made["link"]["link"][len("file://"):]).exists()


def test_a_report_table_shows_one_column_with_one_number_of_decimals():
    from orderguard import report

    page = report.table(pl.DataFrame({"shop": ["S1", "S2"], "flagged_pct": [0.6, 2.7],
                                      "precision": [0.1234, 0.5], "orders": [1200, 3]}))
    cells = re.findall(r"<td class='num'>([^<]*)</td>", page)
    assert cells == ["0.60", "0.1234", "1,200", "2.70", "0.5000", "3"]
