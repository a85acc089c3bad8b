"""The mtotrust command: demo, check (arguments and --from), lint, exit codes, one-line errors, cheap --help."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from strategies import BLOCK_HYPOTHESIS

from mtotrust import Snapshot, Trust, __version__
from mtotrust._policy import TEAMS_ACTIONS
from mtotrust.cli import _common, main
from mtotrust.cli._common import EXIT_INTERNAL, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, UsageError, require_extra

FABRIKAM = "22222222-2222-4222-8222-222222222222"
LITWARE = "44444444-4444-4444-8444-444444444444"
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


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
        """check --json prints one object per identity: the resolution's fields and every app's decision."""
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
        policy.write_text('version = 1\n[mail]\ntrusted_authserv_ids = ["mx.contoso.com"]\n'
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


    def test_json_keys_are_stable(self, capsys):
        """The keys of a check --json object, in order: scripts parse them, so none is renamed or dropped."""
        _, out, _ = run(capsys, "check", "--json", "cameron@fabrikam.com")
        report = json.loads(out)[0]
        assert ["identity", "address", "trust", "reasons", "user_id", "home_tenant_id", "tenant_id", "mail", "dlp",
                "teams", "labels", "snapshot_id", "policy_fingerprint"] == list(report)
        assert (["tag_external"], ["inside_organization"]) == (list(report["mail"]), list(report["dlp"]))


class TestCheckFrom:
    """check --from FILE and --from - read identities one per line, after the arguments."""

    def test_file_after_arguments(self, capsys, tmp_path):
        """Arguments come first, then the file's lines; blank lines and blanks around an identity are skipped."""
        path = tmp_path / "ids.txt"
        path.write_bytes(b"\xef\xbb\xbf  cameron@fabrikam.com\r\n\n \t \r\n\tnobody@example.org  \nmegan@contoso.com")
        code, out, _ = run(capsys, "check", "--json", "--from", str(path), "dana@fabrikam.com")
        assert 0 == code
        assert ["dana@fabrikam.com", "cameron@fabrikam.com", "nobody@example.org", "megan@contoso.com"] == [
            r["identity"] for r in json.loads(out)]

    def test_text_output(self, capsys, tmp_path):
        """Without --json each identity read from the file gets its one-line answer."""
        path = tmp_path / "ids.txt"
        path.write_text("cameron@fabrikam.com\nnobody@example.org\n", encoding="utf-8")
        code, out, _ = run(capsys, "check", "--from", str(path))
        assert 0 == code
        assert ["cameron@fabrikam.com: mto_member", "nobody@example.org: external"] == [
            line.split(" (")[0] for line in out.splitlines()]

    def test_invalid_utf8_line_is_answered(self, capsys, tmp_path):
        """A line that is not UTF-8 is an identity like any other: untrusted, not a crash."""
        path = tmp_path / "ids.txt"
        path.write_bytes(b"x\xff@contoso.com\ncameron@fabrikam.com\n")
        code, out, _ = run(capsys, "check", "--json", "--from", str(path))
        assert (0, ["untrusted", "mto_member"]) == (code, [r["trust"] for r in json.loads(out)])

    @pytest.mark.parametrize("binary", [True, False])
    def test_stdin(self, capsys, monkeypatch, binary):
        """--from - reads standard input (its bytes when it has them, else its text)."""
        text = "cameron@fabrikam.com\n\nnobody@example.org\n"
        stdin = io.TextIOWrapper(io.BytesIO(text.encode())) if binary else io.StringIO(text)
        monkeypatch.setattr(sys, "stdin", stdin)
        code, out, _ = run(capsys, "check", "--json", "--from", "-")
        assert (0, ["mto_member", "external"]) == (code, [r["trust"] for r in json.loads(out)])

    @pytest.mark.parametrize("content", ["", "\n  \n\t\r\n"])
    def test_no_identities_at_all(self, capsys, monkeypatch, tmp_path, content):
        """An empty file or stdin, and no arguments, is bad usage: exit 2, one line saying so."""
        path = tmp_path / "empty.txt"
        path.write_text(content, encoding="utf-8")
        monkeypatch.setattr(sys, "stdin", io.StringIO(content))
        for source, named in ((str(path), "empty.txt"), ("-", "standard input")):
            code, out, err = run(capsys, "check", "--from", source)
            assert (EXIT_USAGE, "") == (code, out)
            assert 1 == len(err.splitlines())
            assert "no identities given" in err
            assert named in err

    def test_no_arguments_at_all(self, capsys):
        """Neither IDENTITY nor --from: exit 2, one line naming both ways to give identities."""
        code, _, err = run(capsys, "check")
        assert EXIT_USAGE == code
        assert ["mtotrust check: no identities given: pass IDENTITY arguments or --from FILE (see --help)"] == (
            err.splitlines())

    @pytest.mark.parametrize("name", ["missing.txt", "a directory"])
    def test_unreadable_file(self, capsys, tmp_path, name):
        """A missing or unreadable --from file is exit 2 with one line naming the file; no snapshot is loaded."""
        if name == "a directory":
            (tmp_path / name).mkdir()
        code, _, err = run(capsys, "check", "--from", str(tmp_path / name), "cameron@fabrikam.com")
        assert EXIT_USAGE == code
        assert 1 == len(err.splitlines())
        assert name in err
        assert "bundled sample" not in err

    def test_20000_identities_through_stdin(self):
        """A 20,000-line list through a pipe: every identity answered, in order, one JSON array."""
        users = [u.mail for u in Snapshot.sample().users.values() if u.mail]
        identities = [users[i % len(users)] if i % 2 else f"user{i}@example.org" for i in range(20_000)]
        result = subprocess.run([sys.executable, "-m", "mtotrust", "check", "--json", "--from", "-"],
                                input="\n".join(identities) + "\n", capture_output=True, text=True, check=False,
                                timeout=300)
        assert 0 == result.returncode, result.stderr[-2000:]
        assert identities == [r["identity"] for r in json.loads(result.stdout)]


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

    def test_json_with_snapshot(self, capsys):
        """lint --json --snapshot prints one JSON document naming the policy, the snapshot and each finding."""
        code, out, _ = run(capsys, "lint", str(EXAMPLES / "bad_policy.toml"), "--snapshot",
                           str(ROOT / "mtotrust" / "sample"), "--json")
        data = json.loads(out)
        assert (EXIT_PROBLEMS, False) == (code, data["ok"])
        assert (str(EXAMPLES / "bad_policy.toml"), str(ROOT / "mtotrust" / "sample")) == (
            data["policy"], data["snapshot"])
        assert ["inactive_tenant_tagged", "guest_mail_tagged", "monotonic_label_rights"] == [
            f["invariant"] for f in data["findings"]]
        assert data["findings"][0]["explanation"]

    @pytest.mark.parametrize("content", ['[mail]\nuntaged_at = "guest"\n', "not toml ["])
    def test_bad_policy_file(self, capsys, tmp_path, content):
        """A policy file that is not a valid policy exits 2 with one line starting 'mtotrust lint: '."""
        path = tmp_path / "p.toml"
        path.write_text(content, encoding="utf-8")
        code, out, err = run(capsys, "lint", str(path))
        assert (EXIT_USAGE, "") == (code, out)
        assert 1 == len(err.splitlines())
        assert err.startswith("mtotrust lint: ")

    def test_bad_snapshot(self, capsys, tmp_path):
        """A missing snapshot exits 2 naming it."""
        code, _, err = run(capsys, "lint", str(EXAMPLES / "policy.toml"), "--snapshot", str(tmp_path / "nope"))
        assert EXIT_USAGE == code
        assert "nope" in err

    def test_works_without_hypothesis(self):
        """lint needs no extra: it runs, and finds the violations, with hypothesis unimportable."""
        code = (
            BLOCK_HYPOTHESIS +
            "from mtotrust.cli import main\n"
            f"sys.exit(main(['lint', {str(EXAMPLES / 'bad_policy.toml')!r}]))\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                                timeout=120)
        assert EXIT_PROBLEMS == result.returncode, result.stderr[-2000:]
        assert "FAIL guest_mail_tagged" in result.stdout


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


    def test_internal_error_exits_3_with_one_line(self, capsys, monkeypatch):
        """A bug in a command is exit 3 with one line asking for a report, never a traceback."""
        from mtotrust.cli import check

        def broken(args):
            raise KeyError("oops\nsecond line")

        monkeypatch.setattr(check, "run", broken)
        code, _, err = run(capsys, "check", "a@b.com")
        assert EXIT_INTERNAL == code
        assert 1 == len(err.splitlines())
        assert "internal error: KeyError" in err

    def test_closed_stdout_is_success(self, capsys, monkeypatch):
        """Output cut short by the reader (``| head``) is not an error."""
        from mtotrust.cli import check

        def closed(args):
            raise BrokenPipeError

        monkeypatch.setattr(check, "run", closed)
        assert (EXIT_OK, "", "") == run(capsys, "check", "a@b.com")


class TestRequireExtra:
    """require_extra: a command that needs an extra names the pip install line when it is missing."""

    def test_message(self):
        """A missing module raises the usage error naming the extra and the line to run."""
        with pytest.raises(UsageError) as info:
            require_extra("sync", "mtotrust_no_such_module")
        assert "mtotrust needs the 'sync' extra: pip install 'mtotrust[sync]'" == str(info.value)

    def test_exit_2_naming_the_command(self, capsys):
        """Under main's error handling it is exit 2 with one line naming the running command."""
        code = _common.run_guarded(lambda: bool(require_extra("sync", "mtotrust_no_such_module.sub")),
                                   command="sync")
        out, err = capsys.readouterr()
        assert (EXIT_USAGE, "") == (code, out)
        assert "mtotrust sync needs the 'sync' extra: pip install 'mtotrust[sync]'\n" == err

    def test_present_module_is_returned(self):
        """An installed module is imported and returned."""
        assert "json" == require_extra("testing", "json").__name__


class TestStartup:
    """--help answers without importing what only a command needs (timed by benchmarks/cli_startup.py)."""

    HEAVY = ("hypothesis", "mtotrust.testing", "mtotrust._verify", "mtotrust.cli.demo", "mtotrust.cli.check",
             "mtotrust.cli.lint")

    @pytest.mark.parametrize("argv", [["--help"], ["check", "--help"], ["lint", "--help"], ["demo", "--help"],
                                      ["--version"]])
    def test_help_imports_no_command(self, argv):
        """python -m mtotrust [COMMAND] --help leaves hypothesis, mtotrust.testing and mtotrust._verify unimported."""
        code = (
            "import json, runpy, sys\n"
            f"sys.argv = ['mtotrust', *{argv!r}]\n"
            "try:\n"
            "    runpy.run_module('mtotrust', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as exc:\n"
            "    code = exc.code\n"
            f"loaded = [m for m in {self.HEAVY!r} if m in sys.modules or any(k.startswith(m + '.') for k in "
            "sys.modules)]\n"
            "print(json.dumps([code, loaded]), file=sys.stderr)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                                timeout=60)
        assert [0, []] == json.loads(result.stderr.splitlines()[-1]), result.stderr[-2000:]
        assert "usage: mtotrust" in result.stdout or argv == ["--version"]


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
