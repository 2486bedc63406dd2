"""Runs that never lose data: kill safety, one scan per warehouse, reruns."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orderguard.scan import ScanBusyError, ScanOptions, run_scan, scan_lock

CONTRACT_OUTPUTS = ("order_scores.parquet", "flagged_orders.csv", "flagged_accounts.csv", "rings.csv",
                    "quarantine.csv")


def snapshot(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in CONTRACT_OUTPUTS + ("run.json",)}


def scan_command(world: dict, out: Path, db: Path, models: Path) -> list[str]:
    return [sys.executable, "-m", "orderguard.cli", "-v", "scan", "--input", str(world["input"]),
            "--out", str(out), "--db", str(db), "--models", str(models), "--no-prefect"]


def test_a_killed_scan_leaves_the_previous_night_intact_and_the_next_run_succeeds(scanned_world, tmp_path):
    out, db, models = tmp_path / "out", tmp_path / "wh.duckdb", tmp_path / "models"
    shutil.copytree(scanned_world["out"], out, symlinks=True)
    shutil.copy(scanned_world["db"], db)
    shutil.copytree(scanned_world["models"], models)
    before = snapshot(out)

    proc = subprocess.Popen(scan_command(scanned_world, out, db, models),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # kill it in the middle of the graph work
        if "stage features" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert snapshot(out) == before, "published files changed under a killed scan"

    rerun = subprocess.run(scan_command(scanned_world, out, db, models), capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert not list(out.glob(".tmp-*"))
    after = snapshot(out)
    for name in CONTRACT_OUTPUTS:  # same input: the same results, byte for byte
        assert after[name] == before[name], name


def test_a_second_scan_on_the_same_warehouse_is_refused_with_a_clear_message(tmp_path):
    db = tmp_path / "wh.duckdb"
    with scan_lock(db):
        with pytest.raises(ScanBusyError, match="another orderguard scan"):
            with scan_lock(db):
                pass
        opts = ScanOptions(input_dir=tmp_path, out_dir=tmp_path / "out", db_path=db)
        with pytest.raises(ScanBusyError):
            run_scan(opts)


def test_each_warehouse_keeps_its_own_forest_so_the_same_input_scores_the_same(scanned_world, tmp_path):
    """Without --models a warehouse other than the project's keeps its forest beside it: a
    scratch scan neither loads another world's forest (its scores would differ) nor saves its
    own over the nightly one's."""
    from orderguard import config

    assert config.models_dir(None) == config.models_dir(config.default_db_path()) == \
        config.project_root() / "models"
    assert config.models_dir(tmp_path / "scratch.duckdb") == tmp_path / "scratch.models"
    scores = []
    for name in ("a", "b"):
        db = tmp_path / name / "wh.duckdb"
        opts = ScanOptions(input_dir=scanned_world["input"], out_dir=tmp_path / name / "out", db_path=db)
        assert opts.models_dir == tmp_path / name / "wh.models"
        run_scan(opts)
        assert (opts.models_dir / "isolation_forest.joblib").exists()
        scores.append((tmp_path / name / "out" / "order_scores.parquet").read_bytes())
    assert scores[0] == scores[1]


def test_a_rerun_of_the_same_input_is_byte_identical_and_replaces_the_nights_history_row(
        scanned_world, tmp_path):
    opts = ScanOptions(input_dir=scanned_world["input"], out_dir=tmp_path / "out",
                       db_path=tmp_path / "wh.duckdb", models_dir=scanned_world["models"])
    run_scan(opts)
    first = snapshot(tmp_path / "out")
    run_scan(ScanOptions(**{**opts.__dict__, "run_id": "second-run"}))
    second = snapshot(tmp_path / "out")
    for name in CONTRACT_OUTPUTS:
        assert first[name] == second[name], name
    a, b = json.loads(first["run.json"]), json.loads(second["run.json"])
    assert a["input_fingerprint"] == b["input_fingerprint"] and a["run_id"] != b["run_id"]
    assert a["counts"] == b["counts"] and a["summary"] == b["summary"]
    import duckdb

    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        rows = con.execute("select run_date, run_id from ops.runs").fetchall()
        kept = con.execute("select run_date, count(*), count(distinct order_id) "
                           "from ops.feature_history group by 1").fetchall()
    assert rows == [(b["run_date"], "second-run")]
    # the backtest inputs: tonight's orders once each, not once per run
    assert kept == [(b["run_date"], b["summary"]["orders_scored"], b["summary"]["orders_scored"])]


def test_an_allow_listed_account_stops_raising_alerts_until_its_entry_expires(scanned_world, tmp_path):
    from datetime import datetime

    import duckdb
    import polars as pl

    from orderguard import allowlist

    flagged = pl.read_csv(scanned_world["out"] / "flagged_accounts.csv", infer_schema=False)
    cleared = flagged["account_id"][0].lstrip("'")
    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    with duckdb.connect(str(db)) as con:
        allowlist.add(con, "account", cleared, "verified customer", datetime(2099, 1, 1))
        allowlist.add(con, "shop", "S-none", "expired snooze", datetime(2000, 1, 1))
    run_scan(ScanOptions(input_dir=scanned_world["input"], out_dir=tmp_path / "out", db_path=db,
                         models_dir=scanned_world["models"]))
    scores = pl.read_parquet(tmp_path / "out" / "order_scores.parquet")
    accounts = pl.read_csv(tmp_path / "out" / "flagged_accounts.csv", infer_schema=False)
    assert cleared not in accounts["account_id"].to_list()
    with duckdb.connect(str(db), read_only=True) as con:
        mine = con.execute(
            "select risk_level, suppressed_by from marts.order_scores where buyer_id = ?", [cleared]
        ).fetchall()
    assert mine and all(level == "low" and "verified customer" in why for level, why in mine)
    assert scores.height == pl.read_parquet(scanned_world["out"] / "order_scores.parquet").height
    # the analyst's file says why an order at the threshold stayed low
    kept_low = scores.filter(pl.col("suppressed_by").is_not_null())
    assert kept_low.height and (kept_low["risk_level"] == "low").all()
    assert kept_low["suppressed_by"].str.contains("verified customer").all()


def test_allow_refuses_a_date_already_passed_and_notes_an_account_never_seen(scanned_world, tmp_path, capsys):
    from orderguard import cli

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    allow = ["allow", "--db", str(db), "--reason", "verified"]
    assert cli.main([*allow, "--account", "NOPE123", "--until", "2020-01-01"]) == 2
    assert "2020-01-01 00:00 has passed" in capsys.readouterr().err
    assert cli.main([*allow, "--account", "NOPE123", "--until", "someday"]) == 2
    assert "'someday' is not a date" in capsys.readouterr().err
    assert cli.main([*allow, "--account", "NOPE123", "--days", "7"]) == 0
    assert "no account 'NOPE123' in the warehouse yet" in capsys.readouterr().err
    # seven days on the clock the order times are kept in (Shanghai), whatever the machine's
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    import duckdb
    with duckdb.connect(str(db), read_only=True) as con:
        expires = con.execute("select expires_at from ops.allowlist where entity_value = 'NOPE123'"
                              ).fetchall()[0][0]
    shanghai = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    assert abs(expires - (shanghai + timedelta(days=7))) < timedelta(minutes=2)
    import polars as pl
    known = pl.read_csv(scanned_world["out"] / "flagged_accounts.csv", infer_schema=False)["account_id"][0]
    assert cli.main([*allow, "--account", known.lstrip("'"), "--days", "7"]) == 0
    assert "in the warehouse yet" not in capsys.readouterr().err


def test_with_a_salt_phones_are_pseudonymised_consistently_in_the_published_files(scanned_world, tmp_path):
    import polars as pl

    opts = ScanOptions(input_dir=scanned_world["input"], out_dir=tmp_path / "out",
                       db_path=tmp_path / "wh.duckdb", models_dir=scanned_world["models"],
                       pseudonym_salt="s3cret")
    run_scan(opts)
    flagged = pl.read_csv(tmp_path / "out" / "flagged_orders.csv", infer_schema=False)
    phones = flagged["receiver_phone"].drop_nulls()
    assert phones.len() > 0 and phones.str.contains(r"^P[a-z2-7]{16}$").all()
    for name in ("flagged_orders.csv", "flagged_accounts.csv", "rings.csv", "report.html"):
        text = (tmp_path / "out" / name).read_text("utf-8-sig")
        assert not __import__("re").search(r"(?<!\d)1[3-9]\d{9}(?!\d)", text), name
    masked = pl.read_csv(scanned_world["out"] / "flagged_orders.csv", infer_schema=False)
    by_order = dict(zip(masked["order_id"], masked["receiver_phone"], strict=True))
    same_masked = {}
    for order, token in zip(flagged["order_id"], flagged["receiver_phone"], strict=True):
        if token and by_order.get(order):
            same_masked.setdefault(token, set()).add(by_order[order])
    assert all(len(m) == 1 for m in same_masked.values())  # one token, one person


def test_scoring_in_small_batches_gives_the_same_results(scanned_world, tmp_path, monkeypatch):
    from orderguard import detect

    monkeypatch.setattr(detect, "SCORING_BATCH_ROWS", 4000)
    run_scan(ScanOptions(input_dir=scanned_world["input"], out_dir=tmp_path / "out",
                         db_path=tmp_path / "wh.duckdb", models_dir=scanned_world["models"]))
    for name in CONTRACT_OUTPUTS:
        assert (tmp_path / "out" / name).read_bytes() == (scanned_world["out"] / name).read_bytes(), name


def test_every_option_of_every_command_says_what_it_does():
    """README: `--help` explains every option."""
    import argparse

    from orderguard import cli

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    silent = [f"{name} {'/'.join(action.option_strings)}"
              for name, sub in commands.choices.items() for action in sub._actions
              if action.option_strings and not action.help]
    assert silent == []


def test_other_commands_exit_3_with_a_message_while_a_scan_holds_the_warehouse(tmp_path, capsys):
    from orderguard import cli

    db = tmp_path / "wh.duckdb"
    holder = subprocess.Popen(  # stands in for a running scan: another process writing the file
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(60)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        verdicts = tmp_path / "v.csv"
        verdicts.write_text("order_id,verdict\nE1,confirmed\n", "utf-8")
        for argv in (["train", "--db", str(db), "--models", str(tmp_path / "m")],
                     ["feedback", "--verdicts", str(verdicts), "--db", str(db)],
                     ["allow", "--db", str(db), "--account", "A1", "--reason", "x"]):
            assert cli.main(argv) == 3, argv
            assert "is in use by another process" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()



def test_other_commands_exit_3_between_a_scans_stages_and_leave_the_warehouse_alone(tmp_path, capsys):
    """Between two stages a scan holds only its lock file, not the DuckDB file: feedback run
    then stored its verdicts mid-night, and when it still held the file as the next stage
    opened it, the scan failed halfway (exit 3). They now wait for the scan's lock."""
    import duckdb

    from orderguard import cli

    db = tmp_path / "wh.duckdb"
    duckdb.connect(str(db)).close()
    verdicts = tmp_path / "v.csv"
    verdicts.write_text("order_id,verdict\nE1,confirmed\n", "utf-8")
    rules = Path(cli.__file__).parent / "rules.toml"
    with scan_lock(db):  # a scan between its stages
        for argv in (["train", "--db", str(db), "--models", str(tmp_path / "m")],
                     ["feedback", "--verdicts", str(verdicts), "--db", str(db)],
                     ["allow", "--db", str(db), "--account", "A1", "--reason", "x"],
                     ["allow", "--db", str(db), "--list"],
                     ["backtest", "--db", str(db), "--config", str(rules), "--from", "2026-10-01",
                      "--to", "2026-10-02"]):
            assert cli.main(argv) == 3, argv
            assert "a scan (or another orderguard command) is using" in capsys.readouterr().err
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from information_schema.tables").fetchone()[0] == 0
    with scan_lock(db):  # and a scan is refused while one of them runs
        with pytest.raises(ScanBusyError, match="feedback, allow, train or backtest"):
            with scan_lock(db):
                pass

def test_a_scan_pointed_at_a_prefect_server_that_is_down_says_so_and_exits_4(scanned_world, tmp_path,
                                                                           monkeypatch, capsys):
    import socket

    from orderguard import cli

    with socket.socket() as probe:  # a local port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{port}/api")
    # what the CLI sets for Prefect, undone after the test
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    code = cli.main(["scan", "--input", str(scanned_world["input"]), "--out", str(tmp_path / "out"),
                     "--db", str(tmp_path / "wh.duckdb")])
    assert code == 4
    assert f"PREFECT_API_URL=http://127.0.0.1:{port}/api does not answer" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.flow
def test_a_bad_export_under_prefect_is_one_line_on_the_terminal(prefect_server, small_world, tmp_path,
                                                                 monkeypatch, capfd):
    """The default (Prefect) path: a missing column is the one-line input error and exit 2;
    the failed task's traceback stays in the flow run's logs."""
    import polars as pl

    from orderguard import cli

    bad = tmp_path / "in"
    shutil.copytree(small_world["input"], bad)
    orders = pl.read_csv(bad / "orders.csv", infer_schema=False)
    orders.drop("buyer_id").write_csv(bad / "orders.csv")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))  # what the CLI sets, undone after
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    code = cli.main(["scan", "--input", str(bad), "--out", str(tmp_path / "out"),
                     "--db", str(tmp_path / "wh.duckdb"), "--models", str(tmp_path / "models")])
    err = capfd.readouterr().err
    assert code == 2
    assert "orderguard: input error: orders.csv: missing required column(s) buyer_id" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err


def stopped_within(pid: int, seconds: float) -> bool:
    """The process has ended (gone, or a zombie init has yet to reap)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_a_prefect_server_left_by_a_killed_scan_is_stopped_and_a_live_scans_is_not(tmp_path):
    """A SIGKILLed scan cannot stop its ephemeral Prefect server; the next scan stops it.
    Stand-ins: two sleeping interpreters carrying the server's environment, one still the
    child of its scan (this test), one whose scan is gone (its parent exited)."""
    from orderguard.cli import stop_orphaned_prefect_servers

    home = tmp_path / "prefect"
    env = {"PREFECT__SERVER_EPHEMERAL": "1", "PREFECT_HOME": str(home), "PATH": "/usr/bin:/bin"}
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    live = subprocess.Popen(sleeper, env=env)
    spawn = ("import subprocess, sys; print(subprocess.Popen("
             f"{sleeper!r}, env={env!r}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)")
    orphan = int(subprocess.run([sys.executable, "-c", spawn], capture_output=True, text=True,
                                check=True).stdout)
    other_home = subprocess.Popen(sleeper, env={**env, "PREFECT_HOME": str(tmp_path / "other")})
    try:
        assert stop_orphaned_prefect_servers(home) == [orphan]
        assert stopped_within(orphan, seconds=10)
        assert live.poll() is None and other_home.poll() is None  # a live scan's server stays
    finally:
        for proc in (live, other_home):
            proc.kill()
            proc.wait()
        try:
            os.kill(orphan, signal.SIGKILL)
        except OSError:
            pass


def test_allow_takes_an_address_as_support_copies_it_from_the_order(scanned_world, tmp_path, capsys):
    """Support has the receiver address of the order in front of them, not the scan's key: the
    entry is normalised as the scan normalises addresses, and matches that order."""
    from datetime import datetime

    import duckdb
    import polars as pl

    from orderguard import allowlist, cli

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    orders = pl.read_csv(scanned_world["input"] / "orders.csv", infer_schema=False)
    flagged = pl.read_csv(scanned_world["out"] / "flagged_orders.csv", infer_schema=False)
    order = (orders.join(flagged.select("order_id"), on="order_id")
             .filter(pl.col("address").str.contains(r"室$")).sort("order_id").row(0, named=True))
    # as typed from the order page: extra spaces, full-width digits
    full_width = str.maketrans("0123456789", "０１２３４５６７８９")
    typed = order["address"].replace("区", "区 ", 1).translate(full_width)
    allow = ["allow", "--db", str(db), "--reason", "family flat, verified"]
    assert cli.main([*allow, "--address", typed]) == 0
    said = capsys.readouterr()
    assert "allow-listed address " in said.out and "in the last scan's window" not in said.err
    with duckdb.connect(str(db)) as con:
        matched = allowlist.suppressed_orders(con, datetime.now())
    assert order["order_id"] in matched["order_id"].to_list()
    # the district and compound support sees in the CSV would clear a whole compound: refused
    area = flagged.filter(pl.col("address_area").is_not_null())["address_area"][0]
    assert cli.main([*allow, "--address", area]) == 2
    assert "names no building" in capsys.readouterr().err
    # an address no order of the window has: said, not silently stored as if it matched
    assert cli.main([*allow, "--address", "杭州市西湖区无此花园9幢9单元909室"]) == 0
    note = capsys.readouterr().err
    assert "no address '杭州市|西湖区|无此花园|B9|U9|R909' in the last scan's window" in note


def test_an_address_entry_stored_as_written_by_an_older_version_keeps_clearing_its_flat(
        scanned_world, tmp_path):
    """Older versions stored an address entry as typed and the scan now matches keys: the
    entry is keyed when scoring reads it, instead of silently matching nothing."""
    from datetime import datetime

    import duckdb
    import polars as pl

    from orderguard import allowlist

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    orders = pl.read_csv(scanned_world["input"] / "orders.csv", infer_schema=False)
    order = orders.filter(pl.col("address").str.contains(r"室$")).sort("order_id").row(0, named=True)
    with duckdb.connect(str(db)) as con:
        allowlist.ensure_table(con)
        con.execute("insert into ops.allowlist values ('address', $v, 'family flat', "
                    "'2099-01-01', 'support', '2026-01-01')", {"v": order["address"]})
        assert order["order_id"] not in allowlist.suppressed_orders(con, datetime.now())["order_id"]
        changed = allowlist.key_older_address_entries(con)
        assert changed == [(order["address"], allowlist.address_key(order["address"]))]
        assert order["order_id"] in allowlist.suppressed_orders(con, datetime.now())["order_id"]


def test_allow_list_prints_every_entry_whole(scanned_world, tmp_path, capsys):
    """An operator checking what is cleared reads every entry, long addresses included, not a
    table cut at ten rows and thirty characters."""
    import polars as pl

    from orderguard import cli

    db = tmp_path / "wh.duckdb"
    shutil.copy(scanned_world["db"], db)
    reason = "verified household of four sharing one broadband line, checked by phone"
    for i in range(12):
        assert cli.main(["allow", "--db", str(db), "--account", f"U{i:03d}", "--reason", reason,
                         "--days", "30"]) == 0
    assert cli.main(["allow", "--db", str(db), "--account", "U100", "--reason", "=核实 by phone",
                     "--days", "30", "--by", "王芳"]) == 0
    capsys.readouterr()
    assert cli.main(["allow", "--db", str(db), "--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\ufeff"), "Excel on Chinese Windows reads the reasons as UTF-8"
    listed = pl.read_csv(io.StringIO(out.removeprefix("\ufeff")))
    assert listed.columns == ["entity_type", "entity_value", "reason", "expires_at", "added_by", "added_at"]
    assert listed.height == 13 and set(listed["reason"]) == {reason, "'=核实 by phone"}
    assert listed.filter(pl.col("entity_value") == "U100")["added_by"].to_list() == ["王芳"]
    assert listed["added_at"].is_not_null().all()


@pytest.mark.parametrize("command", [
    ["train"], ["backtest", "--config", "rules.toml", "--from", "2026-10-01", "--to", "2026-10-02"],
    ["feedback", "--verdicts", "verdicts.csv"], ["allow", "--account", "U1", "--reason", "checked"],
])
def test_a_command_pointed_at_no_warehouse_says_so_and_creates_none(tmp_path, capsys, command):
    """A mistyped --db: not a traceback, and not a new empty warehouse that takes the entry."""
    from orderguard import cli

    db = tmp_path / "typo.duckdb"
    (tmp_path / "verdicts.csv").write_text("order_id,verdict\nE1,confirmed\n", "utf-8")
    (tmp_path / "rules.toml").write_bytes((Path(cli.__file__).parent / "rules.toml").read_bytes())
    args = [a if not a.endswith((".csv", ".toml")) else str(tmp_path / a) for a in command]
    assert cli.main([*args, "--db", str(db)]) == 2
    assert f"no warehouse at {db}" in capsys.readouterr().err
    assert not db.exists()


def test_the_readme_commands_block_names_every_option_of_every_command():
    """People copy the README's Commands block; an option missing there (allow's --db) is
    one they never learn of, and `allow` then writes to the default warehouse."""
    import argparse
    import re

    from orderguard import cli

    readme = (Path(__file__).parents[1] / "README.md").read_text("utf-8")
    block = readme.split("## Commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        lines = "\n".join(line for line in block.splitlines() if line.startswith(f"orderguard {name} "))
        assert lines, f"no `orderguard {name}` line in the README's Commands block"
        options = {o for a in sub._actions if a.help != argparse.SUPPRESS
                   for o in a.option_strings if o.startswith("--")} - {"--help"}
        missing = sorted(o for o in options if not re.search(rf"{re.escape(o)}\b", lines))
        assert not missing, f"orderguard {name}: {missing} not in the README's Commands block"


@pytest.mark.parametrize("setting, value, says", [
    ("DUCKDB_THREADS", 0, "ORDERGUARD_DUCKDB_THREADS="),
    ("DUCKDB_MEMORY_LIMIT", "lots", "ORDERGUARD_DUCKDB_MEMORY='lots' is not a memory size"),
    ("DUCKDB_MEMORY_BESIDE_PYTHON", "xx", "ORDERGUARD_DUCKDB_MEMORY_BESIDE_PYTHON='xx'"),
])
def test_a_bad_duckdb_setting_is_named_before_any_work(tmp_path, capsys, monkeypatch, setting, value, says):
    """Not a DuckDB syntax error, nor one three stages into the night."""
    from orderguard import cli, config

    monkeypatch.setattr(config, setting, value)
    (tmp_path / "in").mkdir()
    code = cli.main(["scan", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                     "--db", str(tmp_path / "wh.duckdb"), "--no-prefect"])
    assert code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "wh.duckdb").exists()


def test_serve_refuses_what_would_fail_only_at_the_first_scheduled_run(tmp_path, monkeypatch, capsys):
    """A schedule, a rules or programme file or a server that cannot work is said when serve starts, not
    at 02:00 in a failed flow run."""
    from orderguard import cli

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    serve = ["serve", "--input", str(tmp_path / "exports" / "{date}"), "--out", str(tmp_path / "out")]
    assert cli.main(serve) == 4  # nothing listens on port 9
    assert "does not answer" in capsys.readouterr().err
    monkeypatch.setattr(cli, "prefect_server_answers", lambda api: True)
    assert cli.main([*serve, "--cron", "0 25 * * *"]) == 2
    assert "Invalid cron string" in capsys.readouterr().err
    assert cli.main([*serve, "--timezone", "Mars/Base"]) == 2
    assert "Invalid timezone" in capsys.readouterr().err
    rules = tmp_path / "rules.toml"
    rules.write_text('[rules.X]\nfeature = "a"\nop = "=>"\nthreshold = 1\npoints = 1\n', "utf-8")
    assert cli.main([*serve, "--rules", str(rules)]) == 2
    assert "unknown op '=>'" in capsys.readouterr().err
    programme = tmp_path / "programme.toml"
    programme.write_text("[default]\nrates = [10, 5, 3]\n", "utf-8")
    assert cli.main([*serve, "--programme", str(programme)]) == 2
    assert "rates must be a list of shares between 0 and 1" in capsys.readouterr().err


def test_a_night_published_but_killed_before_its_record_counts_as_sent_the_next_night(tmp_path, caplog):
    """A scan killed between swapping its folder in and committing its bookkeeping left
    support with the night's files and the warehouse without its record: the next night
    listed those orders again as late flags and new cases (134 of 217 in a 5,000-account
    replay). Its flagged orders now count as sent, and the run says which night to rescan."""
    import duckdb

    from orderguard.scan import adopt_unrecorded_nights

    out = tmp_path / "out"
    for night, run_id, orders in (("2026-10-01", "r1old", ["E0"]),  # another warehouse's
                                  ("2026-10-07", "r7", ["E1"]),
                                  ("2026-10-08", "r8killed", ["E1", "E2", "E3"]),
                                  ("2026-10-09", "r9tonight", ["E4"])):
        folder = out / "nights" / night
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"run_id": run_id, "run_date": night}), "utf-8")
        (folder / "flagged_orders.csv").write_text(
            "\ufefforder_id,reason_codes\n" + "".join(f"{o},RING_BRUSHING;SHARED_PAYER\n" for o in orders),
            "utf-8")
    con = duckdb.connect()
    con.execute("create schema ops")
    con.execute("create table ops.runs (run_date varchar, run_id varchar)")
    con.execute("insert into ops.runs values ('2026-10-06', 'r6'), ('2026-10-07', 'r7')")
    con.execute("create table ops.published_flags (order_id varchar, night varchar, reason_codes varchar[])")
    con.execute("insert into ops.published_flags values ('E1', '2026-10-07', ['SHARED_PAYER'])")

    assert adopt_unrecorded_nights(con, out, "2026-10-09") == ["2026-10-08"]
    assert con.execute("select order_id, night, reason_codes from ops.published_flags "
                       "order by order_id").fetchall() == [
        ("E1", "2026-10-07", ["SHARED_PAYER"]),  # first listed on night 7: stays so
        ("E2", "2026-10-08", ["RING_BRUSHING", "SHARED_PAYER"]),
        ("E3", "2026-10-08", ["RING_BRUSHING", "SHARED_PAYER"])]
    assert "rescan it with --run-date 2026-10-08" in caplog.text
    # once night 8 is rescanned (recorded), nothing more is adopted or said
    con.execute("insert into ops.runs values ('2026-10-08', 'r8killed')")
    caplog.clear()
    assert adopt_unrecorded_nights(con, out, "2026-10-09") == []
    assert "rescan" not in caplog.text


def test_a_column_the_last_export_had_and_tonights_lacks_is_named(caplog):
    """An optional column renamed in the shop system's export (device_id headed "equipment")
    is read as absent: its signals went quiet with no word. The run now names it."""
    import duckdb

    from orderguard import contract
    from orderguard.scan import columns_lost

    con = duckdb.connect()
    con.execute("create schema ops")
    con.execute("create schema raw")
    assert columns_lost(con) == {}  # a first night has nothing to compare with
    orders = contract.TABLES["orders"].column_names
    last = {"raw": {"orders": {"columns": orders},
                    "accounts": {"columns": contract.TABLES["accounts"].column_names}}}
    con.execute("create table ops.runs (run_date varchar, finished_at varchar, run_json varchar)")
    con.execute("insert into ops.runs values ('2026-10-04', '2026-10-05T02:10:00', $j)",
                {"j": json.dumps(last)})
    tonight = [c for c in orders if c != "device_id"] + ["equipment", "_row", "_file"]
    con.execute(f"create table raw.orders ({', '.join(f'{c} varchar' for c in tonight)})")
    con.execute("insert into raw.orders (order_id, _file) values ('E1', 'orders.csv')")
    con.execute("create table raw.accounts ({})".format(
        ", ".join(f"{c} varchar" for c in contract.TABLES["accounts"].column_names)))

    assert columns_lost(con) == {"orders": ["device_id"]}
    assert "orders.csv: column(s) device_id, in the last scanned export, are missing" in caplog.text
