"""The mtotrust command (design section 6): demo, check --json, lint, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtotrust import Snapshot, Trust, __version__
from mtotrust.cli import main
from mtotrust.policy import TEAMS_ACTIONS

FABRIKAM = "22222222-2222-4222-8222-222222222222"
LITWARE = "44444444-4444-4444-8444-444444444444"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class TestDemo:
    def test_table_shows_every_trust_level(self, capsys):
        """The demo resolves the sample identities and shows at least one of each trust level."""
        code, out, _ = run(capsys, "demo")
        assert 0 == code
        rows = [line.split() for line in out.splitlines() if "@" in line or "not-an-address" in line]
        shown = {cell for row in rows for cell in row if cell in {t.value for t in Trust}}
        assert {t.value for t in Trust} == shown

    def test_json_has_every_app(self, capsys):
        """demo --json gives trust and every app's decision per identity."""
        code, out, _ = run(capsys, "demo", "--json")
        reports = json.loads(out)
        assert 0 == code
        assert {"identity", "trust", "reasons", "mail", "dlp", "teams", "labels"} <= set(reports[0])
        assert {t.value for t in Trust} == {r["trust"] for r in reports}


class TestCheck:
    def test_json_contract(self, capsys):
        """check --json prints one object per identity with the fields design section 6 names."""
        code, out, err = run(capsys, "check", "--json", "cameron@fabrikam.com", "nobody@example.org")
        first, second = json.loads(out)
        assert 0 == code
        assert "bundled sample" in err
        cameron = Snapshot.sample().lookup("cameron@fabrikam.com")[0]
        assert ("cameron@fabrikam.com", "mto_member", cameron.id, FABRIKAM) == (
            first["identity"], first["trust"], first["user_id"], first["home_tenant_id"])
        assert set(TEAMS_ACTIONS) == set(first["teams"])
        assert (True, True) == (first["mail"]["tag_external"], first["dlp"]["inside_organization"])
        assert ("external", None, False) == (second["trust"], second["user_id"], second["dlp"]["inside_organization"])
        assert {} == first["labels"]  # Policy.default() defines no labels

    def test_tenant_id_and_auth(self, capsys):
        """--tenant-id is checked against the domain and --auth headers count only from trusted ids."""
        _, out, _ = run(capsys, "check", "--json", "--tenant-id", LITWARE, "cameron@fabrikam.com")
        assert "untrusted" == json.loads(out)[0]["trust"]

    def test_policy_and_snapshot_files(self, capsys, tmp_path):
        """--policy and --snapshot take files; labels come out as sorted rights."""
        policy = tmp_path / "p.toml"
        policy.write_text('[mail]\ntrusted_authserv_ids = ["mx.contoso.com"]\n'
                          '[labels.Confidential]\nmto_member = ["VIEW", "EDIT"]\n')
        store = tmp_path / "snap.sqlite"
        Snapshot.sample().save(store)
        _, out, err = run(capsys, "check", "--json", "--snapshot", str(store), "--policy", str(policy),
                          "--auth", "mx.contoso.com; dmarc=pass header.from=fabrikam.com", "cameron@fabrikam.com")
        report = json.loads(out)[0]
        assert "" == err
        assert (["EDIT", "VIEW"], False) == (report["labels"]["Confidential"], report["mail"]["tag_external"])

    def test_explain(self, capsys):
        """check --explain prints every reason of the resolution and of the mail decision."""
        _, out, _ = run(capsys, "check", "--explain", "dana@fabrikam.com")
        assert "account_disabled" in out
        assert "tagged external" in out


class TestLint:
    def test_sound_policy_passes(self, capsys):
        """lint exits 0 for the default policy file of the examples."""
        code, out, _ = run(capsys, "lint", str(EXAMPLES / "policy.toml"))
        assert 0 == code
        assert "all invariants hold" in out

    def test_bad_policy_fails_with_counterexample(self, capsys):
        """lint exits 1 for the seeded bad policy and shows a counterexample."""
        code, out, _ = run(capsys, "lint", str(EXAMPLES / "bad_policy.toml"))
        assert 1 == code
        assert "FAIL inactive_tenant_tagged" in out
        assert "counterexample" in out


class TestErrors:
    @pytest.mark.parametrize("argv", [
        ["check", "--snapshot", "/does/not/exist", "a@b.com"],
        ["check", "--policy", "/does/not/exist.toml", "a@b.com"],
        ["check"],
        ["bogus"],
        ["lint", "/does/not/exist.toml"],
        [],
    ])
    def test_bad_usage_exits_2_with_one_line(self, capsys, argv):
        """Bad usage or input exits 2 with one line on stderr naming the problem, never a traceback."""
        code, _, err = run(capsys, *argv)
        lines = [line for line in err.splitlines() if "bundled sample" not in line]
        assert 2 == code
        assert 1 == len(lines)
        assert "Traceback" not in err

    def test_invalid_identity_is_an_answer(self, capsys):
        """A malformed identity is not bad usage: it is reported untrusted."""
        code, out, _ = run(capsys, "check", "--json", "not-an-address")
        assert (0, "untrusted") == (code, json.loads(out)[0]["trust"])


class TestEntryPoints:
    def test_python_dash_m_and_version(self):
        """python -m mtotrust runs the same program, and --version names the version."""
        result = subprocess.run([sys.executable, "-m", "mtotrust", "--version"], capture_output=True, text=True,
                                check=False, timeout=60)
        assert (0, f"mtotrust {__version__}") == (result.returncode, result.stdout.strip())

    def test_console_script(self):
        """The installed console script runs the demo."""
        result = subprocess.run(["mtotrust", "demo", "--json"], capture_output=True, text=True, check=False,
                                timeout=60)
        assert 0 == result.returncode
        assert 23 == len(json.loads(result.stdout))


class TestProgress:
    def test_bar_on_a_terminal(self, tmp_path):
        """Loading a snapshot on a TTY draws a progress bar on stderr and erases it; stdout stays clean JSON."""
        import pty  # POSIX only, like the CI machine
        Snapshot.sample().save(tmp_path / "s.sqlite")
        parent, child = pty.openpty()
        result = subprocess.run([sys.executable, "-m", "mtotrust", "check", "--json", "--snapshot",
                                 str(tmp_path / "s.sqlite"), "megan@contoso.com"],
                                stdout=subprocess.PIPE, stderr=child, check=False, timeout=60)
        os.close(child)
        drawn = os.read(parent, 65536).decode()
        os.close(parent)
        assert 0 == result.returncode
        assert "internal" == json.loads(result.stdout)[0]["trust"]
        assert "loading" in drawn
        assert "#" in drawn

    def test_silent_when_not_a_terminal(self, tmp_path, capsys):
        """Without a TTY nothing but the answer is printed."""
        Snapshot.sample().save(tmp_path / "s.sqlite")
        code, _, err = run(capsys, "check", "--snapshot", str(tmp_path / "s.sqlite"), "megan@contoso.com")
        assert (0, "") == (code, err)
