"""The ``mtotrust`` command on an operator's worst day (issue 10): a bad or changed policy, an ASCII locale, a full
or closed stdout. Each runs ``python -m mtotrust`` in a subprocess, as a shell would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hostile as h
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtotrust import Policy
from mtotrust.cli._common import os_text

SAMPLE = str(h.SAMPLE_DIR)
SAMPLE_POLICY = Policy.load(h.SAMPLE_DIR / "policy.toml")
FULL = "mtotrust: cannot write the output (No space left on device)"
# Identities whose text is not ASCII: look-alikes of every known domain, and plain accented ones.
NON_ASCII = [address for address, _, _ in h.CONFUSABLE_IDENTITIES if not address.isascii()]
LOCALE_KEYS = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONUNBUFFERED")


def _env(**settings: str) -> dict[str, str]:
    """The test's environment without locale, encoding or buffering settings, then ``settings``."""
    return {**{k: v for k, v in os.environ.items() if k not in LOCALE_KEYS}, **settings}


def mtotrust(*args: str, env: dict[str, str] | None = None, stdin: str = "",
             stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m mtotrust ARGS`` (stdout buffered as in a shell, unless ``env`` says otherwise)."""
    return subprocess.run([sys.executable, "-m", "mtotrust", *args], input=stdin.encode(), stdout=stdout,
                          stderr=subprocess.PIPE, env=_env() if env is None else env, check=False, timeout=300)


def stderr_lines(proc: subprocess.CompletedProcess[bytes]) -> list[str]:
    return proc.stderr.decode("utf-8", "replace").splitlines()


# Commands whose output goes to a full disk or a closed pipe: buffered text, JSON, the demo's table, argparse's help.
OUTPUT_COMMANDS = [["check", "--snapshot", SAMPLE, "megan@contoso.com"],
                   ["check", "--json", "--snapshot", SAMPLE, "megan@contoso.com"], ["demo"], ["--help"]]
OUTPUT_IDS = ["check", "check json", "demo", "help"]


@pytest.fixture(name="policy_file")
def _policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_bytes((h.SAMPLE_DIR / "policy.toml").read_bytes())
    return path


class TestBadPolicyIsOneLine:
    """Without ``--snapshot``, a bad ``--policy`` is one stderr line, not the sample notice and the error."""

    @pytest.mark.parametrize(("content", "needle"), [
        ("version = 1\n[mail]\nuntaged_at = 'internal'\n", "untaged_at"),
        ("", "version: missing in policy file"),
        ("[mail]\nuntagged_at = 'internal'\n", "version: missing in policy file"),
        ("version = \n", "is not valid TOML"),
    ], ids=["typo", "empty", "no version", "syntax"])
    def test_check_prints_one_line_naming_the_problem(self, tmp_path: Path, content: str, needle: str) -> None:
        """``check --policy BAD IDENTITY`` exits 2 with exactly one stderr line naming the file and the problem."""
        path = tmp_path / "p.toml"
        path.write_text(content, encoding="utf-8")
        proc = mtotrust("check", "--policy", str(path), "megan@contoso.com")
        lines = stderr_lines(proc)
        assert (2, 1, b"") == (proc.returncode, len(lines), proc.stdout), lines
        assert str(path) in lines[0]
        assert needle in lines[0]


class TestPolicyFingerprint:
    """``lint`` prints the policy's fingerprint; ``--policy-fingerprint`` refuses any other policy with exit 2."""

    def test_lint_prints_the_fingerprint_it_accepts(self, policy_file: Path) -> None:
        """``lint`` names the fingerprint on its first line, the same fingerprint makes it pass again, and on a
        terminal it draws the verification's progress on stderr."""
        import pty  # POSIX only, like the CI machine

        fingerprint = Policy.load(policy_file).fingerprint
        parent, child = pty.openpty()
        try:
            proc = subprocess.run([sys.executable, "-m", "mtotrust", "lint", str(policy_file), "--policy-fingerprint",
                                   fingerprint], stdout=subprocess.PIPE, stderr=child, env=_env(), check=False,
                                  timeout=300)
        finally:
            os.close(child)
        drawn = os.read(parent, 65536).decode()
        os.close(parent)
        first = proc.stdout.decode().splitlines()[0]
        assert (0, f"mtotrust lint {policy_file}: policy fingerprint {fingerprint}; checking the synthetic "
                   "attribute space") == (proc.returncode, first)
        assert "checking attribute space: [" in drawn

    @pytest.mark.parametrize("command", [
        ["check", "--snapshot", SAMPLE, "megan@contoso.com"], ["check", "megan@contoso.com"], ["lint"],
        ["lint", "--json"], ["demo"], ["demo", "--json"],
    ], ids=["check", "check without snapshot", "lint", "lint json", "demo", "demo json"])
    def test_a_changed_policy_exits_2_naming_both(self, policy_file: Path, command: list[str]) -> None:
        """After an edit, every command that takes ``--policy`` exits 2 with one line naming the file, the
        fingerprint it has and the reviewed one, and prints nothing on stdout."""
        reviewed = Policy.load(policy_file).fingerprint
        policy_file.write_text(policy_file.read_text(encoding="utf-8") + '\n[overrides]\nblock = ["x.example"]\n',
                               encoding="utf-8")
        changed = Policy.load(policy_file).fingerprint
        place = ["--policy", str(policy_file)] if command[0] != "lint" else [str(policy_file)]
        proc = mtotrust(command[0], *place, *command[1:], "--policy-fingerprint", reviewed)
        lines = stderr_lines(proc)
        assert (2, 1, b"") == (proc.returncode, len(lines), proc.stdout), lines
        assert f"policy file {str(policy_file)!r} has fingerprint {changed}, not the expected {reviewed}" in lines[0]

    @pytest.mark.parametrize(("command", "policy"), [
        (["check", "--snapshot", SAMPLE, "megan@contoso.com"], Policy.default()),
        (["demo"], SAMPLE_POLICY),
    ], ids=["check: Policy.default()", "demo: the sample's policy"])
    def test_the_default_policy_is_pinned_too(self, command: list[str], policy: Policy) -> None:
        """Without ``--policy`` the policy the command uses is the one held to ``--policy-fingerprint``."""
        wrong = "0" * 16
        good, bad = (mtotrust(*command, "--policy-fingerprint", fp) for fp in (policy.fingerprint, wrong))
        assert (0, 2) == (good.returncode, bad.returncode)
        assert [f"has fingerprint {policy.fingerprint}, not the expected {wrong}"] == [
            line[line.index("has fingerprint"):].partition(":")[0] for line in stderr_lines(bad)]

    def test_a_malformed_fingerprint_exits_2(self, policy_file: Path) -> None:
        """A value that is not a fingerprint is named, on one line."""
        proc = mtotrust("check", "--policy", str(policy_file), "--policy-fingerprint", "1B96", "megan@contoso.com")
        lines = stderr_lines(proc)
        assert (2, 1) == (proc.returncode, len(lines)), lines
        assert "expected fingerprint '1B96' is not a policy fingerprint" in lines[0]


class TestLocale:
    """Under ``LC_ALL=C PYTHONUTF8=0`` the identities typed are the identities resolved."""

    @staticmethod
    def _answers(env: dict[str, str], identities: list[str]) -> list[tuple[str, str, list[str]]]:
        proc = mtotrust("check", "--json", "--snapshot", SAMPLE, *identities, env=env)
        assert 0 == proc.returncode, stderr_lines(proc)
        return [(r["identity"], r["trust"], r["reasons"]) for r in json.loads(proc.stdout)]

    def test_c_locale_answers_as_utf8(self) -> None:
        """Every non-ASCII identity of the hostile corpus (look-alike domains included) gets the same trust and
        reasons under the C locale as under a UTF-8 one, and JSON that names it as it was typed."""
        identities = [*NON_ASCII, "josé@contoso.com", "cameron@fabrik\u0430m.com"]
        utf8 = self._answers(_env(LC_ALL="C.UTF-8"), identities)
        ascii_ = self._answers(_env(LC_ALL="C", PYTHONUTF8="0"), identities)
        assert [a for a, _, _ in utf8] == identities
        assert utf8 == ascii_
        assert ("untrusted", ["confusable_domain"]) == (utf8[-1][1], utf8[-1][2][:1])

    @given(st.binary())
    def test_escaped_arguments_are_read_as_utf8(self, typed: bytes) -> None:
        """The bytes a terminal sent, as an ASCII locale decodes them (surrogate escapes), are read as UTF-8 when
        they are UTF-8, and kept as they came otherwise (then the identity is answered ``invalid_identity``)."""
        escaped = typed.decode("ascii", "surrogateescape")
        try:
            expected = typed.decode("utf-8")
        except UnicodeDecodeError:
            expected = escaped
        assert expected == os_text(escaped)

    @given(st.text(st.characters(exclude_categories=["Cs"])))
    def test_text_the_locale_decoded_is_left_alone(self, text: str) -> None:
        """An argument without surrogate escapes (a UTF-8 or Latin-1 locale decoded it) is not decoded again."""
        assert text == os_text(text)


class TestOutputErrors:
    """A stdout that cannot be written is one line and exit 2; a reader that stops reading is exit 0, silent."""

    @pytest.mark.parametrize("buffering", [{}, {"PYTHONUNBUFFERED": "1"}], ids=["buffered", "unbuffered"])
    @pytest.mark.parametrize("command", OUTPUT_COMMANDS, ids=OUTPUT_IDS)
    def test_full_disk_exits_2_with_one_line(self, command: list[str], buffering: dict[str, str]) -> None:
        """``> /dev/full``: exit 2 and "cannot write the output (No space left on device)", not an internal
        error (exit 3) nor Python's "Exception ignored" at exit (120)."""
        with Path("/dev/full").open("wb") as full:
            proc = mtotrust(*command, env=_env(**buffering), stdout=full.fileno())
        assert (2, [FULL]) == (proc.returncode, stderr_lines(proc))

    @pytest.mark.parametrize("buffering", [{}, {"PYTHONUNBUFFERED": "1"}], ids=["buffered", "unbuffered"])
    @pytest.mark.parametrize("command", OUTPUT_COMMANDS, ids=OUTPUT_IDS)
    def test_closed_pipe_is_quiet_success(self, command: list[str], buffering: dict[str, str]) -> None:
        """A pipe whose reader is gone (``| head`` that has exited) is exit 0 with nothing on stderr."""
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            proc = mtotrust(*command, env=_env(**buffering), stdout=write_end)
        finally:
            os.close(write_end)
        assert (0, []) == (proc.returncode, stderr_lines(proc))
