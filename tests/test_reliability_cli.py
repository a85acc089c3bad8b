"""The CLI under hostile input (issue 5): ``python -m mtotrust check ...`` exits 2 with one stderr line for bad
input, never a traceback; hostile identities and headers are answered fail-closed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hostile as h
import pytest

from mtotrust import Trust

SAMPLE = str(h.SAMPLE_DIR)


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(check=False, args=[sys.executable, "-m", "mtotrust", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, errors="surrogateescape")


def assert_usage_error(proc: subprocess.CompletedProcess[str], needle: str = "") -> None:
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines[:5]
    assert needle.lower() in lines[0].lower(), lines[0][:300]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    out: dict[str, Path] = {}
    folder = h.make_sample_copy(root / "truncated")
    data = (folder / "organization.json").read_bytes()
    (folder / "organization.json").write_bytes(data[: len(data) // 2])
    out["truncated folder"] = folder
    folder = h.make_sample_copy(root / "wrongtype")
    page = json.loads((folder / "users" / "0001.json").read_text())
    page["value"][0]["accountEnabled"] = "true"
    (folder / "users" / "0001.json").write_text(json.dumps(page))
    out["wrong type"] = folder
    store = root / "s.sqlite"
    h.SAMPLE.save(store)
    raw = store.read_bytes()
    (root / "half.sqlite").write_bytes(raw[: len(raw) // 2])
    out["half store"] = root / "half.sqlite"
    (root / "junk.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    out["junk store"] = root / "junk.sqlite"
    (root / "typo.toml").write_text("version = 1\n[mail]\nuntaged_at = 'internal'\n")
    out["policy typo"] = root / "typo.toml"
    (root / "syntax.toml").write_text("version = \n")
    out["policy syntax"] = root / "syntax.toml"
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    out["policy deep"] = root / "deep.json"
    return out


@pytest.mark.parametrize(("kind", "needle"), [("truncated folder", "organization.json"),
                                               ("wrong type", "accountEnabled"), ("half store", "half.sqlite"),
                                               ("junk store", "junk.sqlite")])
def test_bad_snapshot_exits_2_with_one_line(bad_inputs: dict[str, Path], kind: str, needle: str) -> None:
    assert_usage_error(run("check", "--snapshot", str(bad_inputs[kind]), "megan@contoso.com"), needle)


@pytest.mark.parametrize(("kind", "needle"), [("policy typo", "untaged_at"), ("policy syntax", "syntax.toml"),
                                               ("policy deep", "deep.json")])
def test_bad_policy_exits_2_with_one_line(bad_inputs: dict[str, Path], kind: str, needle: str) -> None:
    assert_usage_error(run("check", "--snapshot", SAMPLE, "--policy", str(bad_inputs[kind]), "megan@contoso.com"),
                       needle)


def test_missing_files_and_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    assert_usage_error(run("check", "--snapshot", str(tmp_path / "nope"), "x@y.z"), "nope")
    assert_usage_error(run("check", "--snapshot", SAMPLE, "--policy", str(tmp_path / "nope.toml"), "x@y.z"),
                       "nope.toml")
    assert_usage_error(run("check", "--snapshot", SAMPLE))
    assert_usage_error(run("frobnicate"))


def _cli_safe(text: str) -> bool:
    """What argv can carry: no NUL, no lone surrogate (tested apart, as undecodable bytes), not huge."""
    return ("\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text)
            and len(text.encode("utf-8")) < 50_000)


def test_hostile_identities_are_answered_fail_closed_in_one_run() -> None:
    """Everything argv can carry (not NUL) in one invocation: exit 0, JSON, never above external."""
    identities = [s for s in h.HOSTILE_STRINGS if _cli_safe(s) and h.hostile_cap(s) <= Trust.EXTERNAL]
    identities += [a for a, _, e in h.CONFUSABLE_IDENTITIES if e in ("confusable", "foreign")][:150]
    proc = run("check", "--snapshot", SAMPLE, "--json", "--auth", "mx.contoso.com; dmarc=pass header.from=x",
               "--", *identities)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    assert len(reports) == len(identities)
    for report in reports:
        assert report["trust"] in ("untrusted", "external"), report
        assert report["mail"]["tag_external"] is True
        assert report["dlp"]["inside_organization"] is False
        assert not report["teams"]["presence"]
        assert not report["teams"]["file_sharing"]


def test_hostile_identities_from_a_file_are_answered_fail_closed(tmp_path: Path) -> None:
    """What argv cannot carry, a --from file can (NUL, huge lines, bytes that are not UTF-8, a BOM, CRLF): every
    line is answered in order, exit 0, never above external; an unreadable --from is exit 2 with one line."""
    lines = [s.strip(" \t\r") for s in h.HOSTILE_STRINGS
             if "\n" not in s and not any("\ud800" <= c <= "\udfff" for c in s)]
    lines = [s for s in lines if s and h.hostile_cap(s) <= Trust.EXTERNAL]
    path = tmp_path / "hostile.txt"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(s.encode("utf-8") for s in lines) + b"\r\nx\xff\xfe@y.z\r\n")
    proc = run("check", "--snapshot", SAMPLE, "--json", "--from", str(path))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    assert [r["identity"] for r in reports[:-1]] == lines
    assert reports[-1]["trust"] == "untrusted"
    for report in reports:
        assert report["trust"] in ("untrusted", "external"), report
        assert report["mail"]["tag_external"] is True
        assert report["dlp"]["inside_organization"] is False
    assert_usage_error(run("check", "--snapshot", SAMPLE, "--from", str(tmp_path / "nope\nfile.txt")), "nope")


def test_invalid_utf8_in_argv_is_answered_not_crashed() -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape); on a UTF-8 terminal with
    strict errors (any non-C UTF-8 locale, or PYTHONIOENCODING=utf-8) printing them must not be exit 3."""
    arg = b"x\xff@contoso.com".decode("utf-8", "surrogateescape")
    proc = run("check", "--snapshot", SAMPLE, "--json", arg)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0
    assert json.loads(proc.stdout)[0]["trust"] == "untrusted"


def test_forged_auth_headers_on_the_command_line_tag_the_mail() -> None:
    args = ["check", "--snapshot", SAMPLE, "--policy", str(h.SAMPLE_DIR / "policy.toml"), "--json"]
    for _label, auth in h.FORGED_AUTH:
        if isinstance(auth, str) and _cli_safe(auth):
            args += ["--auth", auth]
        if len(args) > 14:
            break
    proc = run(*args, "--", "cameron@fabrikam.com")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)[0]["mail"]["tag_external"] is True


@pytest.mark.parametrize("tenant_id", ["x" * 10_000, "22222222-2222-4222-8222-222222222222\r\nX: y", "\u202e", ""])
def test_hostile_tenant_ids(tenant_id: str) -> None:
    proc = run("check", "--snapshot", SAMPLE, "--json", "--tenant-id", tenant_id, "cameron@fabrikam.com")
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (0, 2), proc.stderr[-2000:]
    if proc.returncode == 0:
        assert json.loads(proc.stdout)[0]["trust"] in ("untrusted", "external", "mto_member")
    else:
        assert len(proc.stderr.strip().splitlines()) == 1
