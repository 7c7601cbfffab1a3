"""``partsledger verify``: what it says on a healthy log, its --json shape, and bad database URLs.

Run in process through typer's ``CliRunner`` on the suite's database (SQLite
or PostgreSQL), plus once as the installed console script in a subprocess to
show the real exit code and that no traceback reaches the user.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clients.cli import app
from ledger.keys import KeyPair, b64encode, write_key_file
from tests.support import World

runner = CliRunner()
CLEAN_ENV: dict[str, str | None] = {"PARTSLEDGER_ORIGIN": None, "PARTSLEDGER_DB": None, "PARTSLEDGER_LOG_KEY": None}
OK_LINE = re.compile(r"ok: (\d+) records, (\d+) signatures, (\d+) Merkle nodes and (\d+) checkpoints verified; "
                     r"root ([0-9a-f]{64})")


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["verify", *args], env=CLEAN_ENV)
    # No exception other than the exit itself escaped: nothing for a traceback to print.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def populated(world: World) -> World:
    """Genesis, three orgs, a batch of five key additions: 9 records, 5 checkpoints."""
    shops = [world.register(f"shop-{i}", "workshop") for i in range(3)]
    world.ledger.append_batch([
        world.entry(shops[0], "key.add", {"org_id": "shop-0", "public_key": b64encode(KeyPair.generate().public_key)})
        for _ in range(5)
    ])
    return world


def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data-0"  # where the conftest ``ledger`` fixture keeps its key files


def expected_nodes(size: int) -> int:
    return sum(size >> level for level in range(size.bit_length()))


def test_healthy_log_exits_0_with_one_line_saying_what_was_checked(populated: World, tmp_path: Path) -> None:
    ledger = populated.ledger
    code, stdout, stderr = run("--db", ledger.db.url, "--data-dir", str(data_dir(tmp_path)))
    assert code == 0, stderr
    assert stdout.count("\n") == 1  # one line, not wrapped at the terminal width
    match = OK_LINE.fullmatch(stdout.strip())
    assert match is not None, stdout
    records, signatures, nodes, checkpoints, root = match.groups()
    latest = ledger.latest_checkpoint()
    assert latest is not None
    assert (int(records), int(signatures), int(nodes), int(checkpoints)) == (9, 9, expected_nodes(9), 5)
    assert root == latest.root.hex()
    # The log was served under a non-default origin and verify was not told it: the checkpoints name it,
    # and their signatures were checked with the log key from the data dir.
    assert ledger.origin != "partsledger.localhost/log"
    assert "not checked" not in stdout


def test_json_output_shape(populated: World, tmp_path: Path) -> None:
    ledger = populated.ledger
    code, stdout, _ = run("--db", ledger.db.url, "--data-dir", str(data_dir(tmp_path)), "--json",
                          "--replay")
    assert code == 0
    report = json.loads(stdout)
    assert set(report) == {"ok", "records", "signatures", "checkpoints", "merkle_nodes", "root", "origin",
                           "checkpoint_signatures_checked", "replayed_tables"}
    latest = ledger.latest_checkpoint()
    assert latest is not None
    assert report["ok"] is True
    assert (report["records"], report["signatures"], report["checkpoints"]) == (9, 9, 5)
    assert report["merkle_nodes"] == expected_nodes(9)
    assert report["root"] == latest.root.hex()
    assert report["origin"] == ledger.origin
    assert report["checkpoint_signatures_checked"] is True
    assert {"orgs", "org_keys"} <= set(report["replayed_tables"])
    assert "seed" not in stdout.lower() and "private" not in stdout.lower()


def test_json_failure_shape_and_wrong_log_key(populated: World, tmp_path: Path) -> None:
    """Checkpoints that the given log key did not sign: exit 1, named at the first checkpoint."""
    other = tmp_path / "other.key"
    write_key_file(other, KeyPair.generate())
    ledger = populated.ledger
    args = ("--db", ledger.db.url, "--data-dir", str(data_dir(tmp_path)), "--log-key", str(other))
    code, stdout, _ = run(*args, "--json")
    assert code == 1
    report = json.loads(stdout)
    assert set(report) == {"ok", "seq", "code", "error"}
    assert report["ok"] is False and report["seq"] == 0 and report["code"] == "integrity"
    assert "signature does not verify" in report["error"]
    code, stdout, stderr = run(*args)
    assert code == 1 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("error: integrity: checkpoint of size 1: signature")


def test_origin_option_must_match_the_checkpoints(populated: World, tmp_path: Path) -> None:
    ledger = populated.ledger
    base = ("--db", ledger.db.url, "--data-dir", str(data_dir(tmp_path)))
    assert run(*base, "--origin", ledger.origin)[0] == 0
    code, _, stderr = run(*base, "--origin", "elsewhere.example/log")
    assert code == 1
    assert "origin 'test.partsledger/log' is not 'elsewhere.example/log'" in stderr


def test_without_the_log_key_it_says_signatures_were_not_checked(populated: World, tmp_path: Path) -> None:
    ledger = populated.ledger
    empty = tmp_path / "no-keys"
    empty.mkdir()
    code, stdout, _ = run("--db", ledger.db.url, "--data-dir", str(empty))
    assert code == 0
    assert stdout.strip().endswith("(checkpoint signatures not checked: no log key)")
    code, stdout, _ = run("--db", ledger.db.url, "--data-dir", str(empty), "--json")
    assert json.loads(stdout)["checkpoint_signatures_checked"] is False


@pytest.mark.parametrize(("url", "code", "message"), [
    ("postgresql://nobody@127.0.0.1:1/nothing", 3, "error: cannot reach the database: "),
    ("mysql://somewhere/db", 2, "error: invalid_field: unsupported database 'mysql'"),
    ("not a url at all", 2, "error: invalid_field: not a database URL"),
    ("sqlite:///{tmp}/missing/ledger.sqlite3", 2, "error: not_found: no database file at "),
])
def test_bad_database_url_is_one_line_and_non_zero(tmp_path: Path, url: str, code: int, message: str) -> None:
    url = url.format(tmp=tmp_path)
    got, stdout, stderr = run("--db", url, "--data-dir", str(tmp_path / "data"))
    assert got == code
    assert stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith(message), stderr
    assert not (tmp_path / "missing").exists() and not (tmp_path / "data").exists()  # verify creates nothing


def test_database_without_a_log_is_one_line_and_non_zero(db_url: str, tmp_path: Path) -> None:
    """Reachable, but empty (a fresh SQLite file or PostgreSQL schema with no tables)."""
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).touch()
    code, stdout, stderr = run("--db", db_url, "--data-dir", str(tmp_path / "data"))
    assert code == 2
    assert stderr.strip() == ("error: not_found: no partsledger log in this database "
                              "(log_records is missing: wrong URL or schema?)")
    assert stdout == ""


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("partsledger")
    return [str(script)] if script.exists() else [sys.executable, "-m", "clients.cli"]


@pytest.mark.parametrize("url", ["not a url at all", "postgresql://nobody@127.0.0.1:1/nothing"])
def test_console_script_prints_no_traceback(tmp_path: Path, url: str) -> None:
    done = subprocess.run([*_console_script(), "verify", "--db", url, "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode in (2, 3)
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr


def test_console_script_on_a_healthy_log(populated: World, tmp_path: Path) -> None:
    done = subprocess.run([*_console_script(), "verify", "--db", populated.ledger.db.url,
                           "--data-dir", str(data_dir(tmp_path))],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert OK_LINE.fullmatch(done.stdout.strip()) is not None


@pytest.mark.parametrize(("url", "exit_code", "code", "message"), [
    ("postgresql://nobody@127.0.0.1:1/nothing", 3, "unreachable", "cannot reach the database: "),
    ("mysql://somewhere/db", 2, "invalid_field", "unsupported database 'mysql'"),
    ("not a url at all", 2, "invalid_field", "not a database URL"),
    ("sqlite:///{tmp}/missing/ledger.sqlite3", 2, "not_found", "no database file at "),
])
def test_json_user_errors_are_one_object_with_the_same_exit_code(tmp_path: Path, url: str, exit_code: int,
                                                                 code: str, message: str) -> None:
    got, stdout, stderr = run("--db", url.format(tmp=tmp_path), "--data-dir", str(tmp_path / "data"), "--json")
    assert got == exit_code
    assert stderr == ""
    report = json.loads(stdout)
    assert report["ok"] is False and report["code"] == code and report["seq"] is None
    assert report["error"].startswith(message), report


def test_a_log_key_that_is_not_there_is_a_user_error(populated: World, tmp_path: Path) -> None:
    args = ("--db", populated.ledger.db.url, "--data-dir", str(data_dir(tmp_path)),
            "--log-key", str(tmp_path / "typo.key"))
    code, stdout, stderr = run(*args)
    assert code == 2 and stdout == ""
    assert stderr.strip() == f"error: not_found: --log-key: no key file at {tmp_path / 'typo.key'}"
    code, stdout, stderr = run(*args, "--json")
    assert code == 2 and stderr == ""
    assert json.loads(stdout) == {"ok": False, "code": "not_found", "field": "log_key", "seq": None,
                                  "error": f"--log-key: no key file at {tmp_path / 'typo.key'}"}


@pytest.mark.parametrize(("args", "exit_code", "code"), [
    (["--bogus"], 2, "invalid_field"),
    (["--data-dir"], 2, "invalid_field"),
    (["--db", "postgresql://nobody@127.0.0.1:1/nothing"], 3, "unreachable"),
])
def test_console_script_json_errors_are_json(tmp_path: Path, args: list[str], exit_code: int, code: str) -> None:
    done = subprocess.run([*_console_script(), "verify", "--json", *args], capture_output=True, text=True,
                          timeout=60, check=False, cwd=tmp_path)
    assert done.returncode == exit_code, done.stderr
    assert done.stderr == ""
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["code"] == code and report["error"]
