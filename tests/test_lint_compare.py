"""``mtotrust lint`` with user invariants, and ``lint --compare`` / ``compare()``, checked against the real engine.

Every expectation is computed here from the engine itself: the counterexample of a violated user invariant by a
hand-written predicate over :func:`enumerate_space`, the decision classes of a comparison by evaluating a
:class:`TrustEngine` under each policy on every case (and every address of a snapshot) and pairing the answers.
Each lint or compare of the space takes seconds, so the runs are module-scoped fixtures shared by the tests.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import pytest
from hypothesis import HealthCheck, assume, given, settings

from mtotrust import Policy, Snapshot, Trust, TrustEngine
from mtotrust._model import Identity
from mtotrust._policy import TEAMS_ACTIONS
from mtotrust._verify.compare import Differences, compare
from mtotrust._verify.enumeration import enumerate_space
from mtotrust._verify.space import AUTH_VARIANTS, Case
from mtotrust.cli import main
from mtotrust.cli._common import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from mtotrust.testing.strategies import policies

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "policy.toml"
SAMPLE = ROOT / "mtotrust" / "sample"

GUESTS = "guests never get Confidential rights"
REMOVED = "removed tenants never pass DLP"
CHAT = "externals_never_chat"
OUTSIDE = "guests_outside"

# Built-in invariants hold for it (rights grow with trust), the user's rule about guests does not.
VIOLATED_TOML = f"""version = 1

[labels.Confidential]
guest = "Viewer"
mto_member = "Co-Author"
internal = "Co-Owner"

[[invariants]]
name = "{GUESTS}"
app = "labels"
label = "Confidential"
trust_at_most = "guest"
expect = "no_rights"

[[invariants]]
name = "{REMOVED}"
app = "dlp"
tenant_state = "removed"
expect = "outside"
"""

# Policy.default() in every decision; only its [[invariants]] (which all hold) make it differ.
HOLDING_TOML = f"""version = 1

[[invariants]]
name = "{REMOVED}"
app = "dlp"
tenant_state = "removed"
expect = "outside"

[[invariants]]
name = "guest mail is tagged"
app = "mail"
trust_at_most = "guest"
expect = "tagged"
"""

CHAT_PY = f'''from mtotrust.testing import invariant


@invariant(app="teams", action="chat", trust_at_most="external")
def {CHAT}(point, decision):
    """External identities never chat."""
    return not decision.allowed
'''

OUTSIDE_PY = f'''from mtotrust.testing import invariant


@invariant(app="dlp", trust_at_most="guest")
def {OUTSIDE}(point, decision):
    """Guests never count inside the organization."""
    return not decision.inside_organization
'''

# Classic's thresholds at the example policy's mail boundary, so both sides' messages are the same ones.
CLASSIC_AT_BOUNDARY_TOML = """version = 1

[mail]
untagged_at = "internal"
trusted_authserv_ids = ["mx.contoso.com"]

[dlp]
inside_at = "internal"

[teams]
meeting_lobby_bypass = "internal"
file_sharing = "internal"
presence = "internal"
people_search = "internal"
"""

RAISES_PY = '''from mtotrust.testing import invariant


@invariant(app="dlp")
def boom(point, decision):
    """Raises on the first point."""
    raise ValueError("kaboom")
'''


class Run(NamedTuple):
    """What one ``mtotrust`` command did: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str


def lint(*argv: str | Path) -> Run:
    """Run ``mtotrust lint *argv`` in this process (as tests/test_cli.py does), capturing its output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["lint", *(str(a) for a in argv)])
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture(name="files", scope="module")
def fixture_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the policies and invariant modules of this file to one folder."""
    folder = tmp_path_factory.mktemp("lint")
    for name, text in (("violated.toml", VIOLATED_TOML), ("holding.toml", HOLDING_TOML), ("chat.py", CHAT_PY),
                       ("outside.py", OUTSIDE_PY), ("raises.py", RAISES_PY),
                       ("classic.toml", CLASSIC_AT_BOUNDARY_TOML)):
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def finding_text(out: str, name: str) -> str:
    """Return the lines of ``lint``'s text output about the invariant ``name``: its FAIL line and what follows."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"FAIL {name}:"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[start:end])


# -- independent expectations: user invariants -----------------------------------------------------------------

Rank = tuple[bool, int, int, str]


def rank(identity: str, case: Case | None) -> Rank:
    """Order counterexamples as documented: space cases before snapshot addresses, fewest facts, shortest, first."""
    complexity = case.facts.complexity if case is not None and case.facts is not None else 0
    return (case is None, complexity, len(identity), identity)


@attrs.frozen
class Violations:
    """How often a hand-written predicate is violated over the space, and its minimal counterexample."""

    count: int
    identity: str


def violations(policy: Policy, violated: Callable[[TrustEngine, Identity | str], bool]) -> Violations:
    """Return how many cases of the space ``violated`` says break a rule, and the minimal one."""
    snapshot, cases = enumerate_space(policy)
    engine = TrustEngine(snapshot, policy)
    bad = [c for c in cases if violated(engine, c.query)]
    best = min(bad, key=lambda c: rank(c.identity, c))
    return Violations(len(bad), best.identity)


def guest_gets_confidential(engine: TrustEngine, query: Identity | str) -> bool:
    """The identity's trust is at most guest, and the label Confidential grants it some right."""
    return engine.resolve(query).trust <= Trust.GUEST and bool(engine.label_rights(query, "Confidential").rights)


def external_chats(engine: TrustEngine, query: Identity | str) -> bool:
    """The identity's trust is at most external, and it may chat."""
    return engine.resolve(query).trust <= Trust.EXTERNAL and engine.teams(query, "chat").allowed


@pytest.fixture(name="violated_policy", scope="module")
def fixture_violated_policy(files: Path) -> Policy:
    """The policy whose guests get Confidential rights."""
    return Policy.load(files / "violated.toml")


@pytest.fixture(name="guest_violations", scope="module")
def fixture_guest_violations(violated_policy: Policy) -> Violations:
    """Where the guest rule breaks under the violated policy, computed from the engine."""
    return violations(violated_policy, guest_gets_confidential)


@pytest.fixture(name="chat_violations", scope="module")
def fixture_chat_violations(violated_policy: Policy) -> Violations:
    """Where the chat rule breaks under the violated policy (chat is open at external), from the engine."""
    return violations(violated_policy, external_chats)


@pytest.fixture(name="violated_text", scope="module")
def fixture_violated_text(files: Path) -> Run:
    """``mtotrust lint violated.toml``."""
    return lint(files / "violated.toml")


@pytest.fixture(name="violated_json", scope="module")
def fixture_violated_json(files: Path) -> Run:
    """``mtotrust lint violated.toml --invariants chat.py --json``."""
    return lint(files / "violated.toml", "--invariants", files / "chat.py", "--json")


class TestUserInvariantsLint:
    """``mtotrust lint`` proves the policy's ``[[invariants]]`` and ``--invariants`` modules like the built-ins."""

    def test_violated_policy_invariant_fails(self, violated_text: Run, guest_violations: Violations) -> None:
        """A violated [[invariants]] entry (and nothing else) exits 1 with its count, identity and deciding key."""
        code, out, _ = violated_text
        assert EXIT_PROBLEMS == code
        assert [GUESTS] == [line[5:].partition(":")[0] for line in out.splitlines() if line.startswith("FAIL ")]
        text = finding_text(out, GUESTS)
        assert f"{guest_violations.count} violation(s)" in text
        assert f"identity: {guest_violations.identity!r}" in text
        assert 'decided by: labels.Confidential.guest = "Viewer"' in text
        assert f"ok   {REMOVED}" in out.splitlines()

    def test_holding_invariants_pass(self, files: Path) -> None:
        """A policy whose own invariants and module invariants all hold exits 0 and lists each as ok."""
        code, out, _ = lint(files / "holding.toml", "--invariants", files / "outside.py")
        assert EXIT_OK == code
        lines = out.splitlines()
        assert {f"ok   {REMOVED}", "ok   guest mail is tagged", f"ok   {OUTSIDE}"} <= set(lines)
        assert not [line for line in lines if line.startswith("FAIL ")]

    def test_two_modules_one_violated(self, files: Path, chat_violations: Violations) -> None:
        """With two --invariants files, both are checked: the violated @invariant exits 1 naming it, the other ok."""
        code, out, _ = lint(files / "holding.toml", "--invariants", files / "outside.py", "--invariants",
                            files / "chat.py")
        assert EXIT_PROBLEMS == code
        assert [CHAT] == [line[5:].partition(":")[0] for line in out.splitlines() if line.startswith("FAIL ")]
        assert f"ok   {OUTSIDE}" in out.splitlines()
        text = finding_text(out, CHAT)
        assert f"identity: {chat_violations.identity!r}" in text
        assert 'decided by: teams.chat = "external"' in text
        assert "External identities never chat." in text

    def test_json_findings(self, violated_json: Run, guest_violations: Violations,
                           chat_violations: Violations) -> None:
        """--json carries each user finding's invariant, deciding key, counterexample identity and count."""
        code, out, _ = violated_json
        data = json.loads(out)
        assert (EXIT_PROBLEMS, False) == (code, data["ok"])
        found = {f["invariant"]: (f["key"], f["identity"], f["count"]) for f in data["findings"]}
        assert {GUESTS: ('labels.Confidential.guest = "Viewer"', guest_violations.identity, guest_violations.count),
                CHAT: ('teams.chat = "external"', chat_violations.identity, chat_violations.count)} == found
        assert {GUESTS, REMOVED, CHAT} <= set(data["checked"])


class TestBrokenInvariants:
    """What cannot be checked is bad usage: exit 2, one line on stderr naming it, never a traceback."""

    @pytest.mark.parametrize(("module", "text", "said"), [
        ("syntax.py", "def broken(:\n", "SyntaxError"),
        ("empty.py", "X = 1\n", "defines no invariant"),
        ("missing.py", None, "missing.py"),
        ("raises.py", RAISES_PY, "'boom'"),
    ])
    def test_broken_module(self, capsys: pytest.CaptureFixture[str], tmp_path: Path, module: str,
                           text: str | None, said: str) -> None:
        """A module with a syntax error, without an invariant, missing, or whose invariant raises exits 2."""
        if text is not None:
            (tmp_path / module).write_text(text, encoding="utf-8")
        (tmp_path / "p.toml").write_text("version = 1\n", encoding="utf-8")
        code = main(["lint", str(tmp_path / "p.toml"), "--invariants", str(tmp_path / module)])
        _, err = capsys.readouterr()
        assert EXIT_USAGE == code
        assert 1 == len(err.splitlines())
        assert err.startswith("mtotrust lint: ")
        assert module in err
        assert said in err
        assert "Traceback" not in err

    @pytest.mark.parametrize(("entry", "key"), [
        ('app = "mail"\nexpect = "outside"\n', "invariants.1.expect"),
        ('app = "mail"\nexpect = "tagged"\ncolour = "red"\n', "invariants.1.colour"),
        ('app = "mail"\n', "invariants.1.expect"),
        ('app = "dlp"\ntrust_at_most = "boss"\nexpect = "outside"\n', "invariants.1.trust_at_most"),
        ('app = "labels"\nlabel = "Secret"\nexpect = "no_rights"\n', "invariants.1.label"),
    ])
    def test_bad_definition(self, capsys: pytest.CaptureFixture[str], tmp_path: Path, entry: str, key: str) -> None:
        """A bad [[invariants]] definition exits 2 with one line naming the file and the entry's key."""
        path = tmp_path / "bad.toml"
        path.write_text(f'version = 1\n\n[[invariants]]\nname = "fine"\napp = "dlp"\nexpect = "outside"\n\n'
                        f'[[invariants]]\nname = "x"\n{entry}', encoding="utf-8")
        code = main(["lint", str(path)])
        out, err = capsys.readouterr()
        assert (EXIT_USAGE, "") == (code, out)
        assert 1 == len(err.splitlines())
        assert err.startswith(f"mtotrust lint: {key}: ")
        assert "bad.toml" in err
        assert "Traceback" not in err


# -- independent expectations: comparisons ----------------------------------------------------------------------

Key = tuple[str, str, str, str]
"""A decision class: (app, the identity's trust under the baseline, outcome before, outcome after)."""


@attrs.define
class Seen:
    """One decision class as computed here: how many decisions, how many from the snapshot, the minimal case."""

    count: int
    from_snapshot: int
    best: Rank


@attrs.frozen
class Expected:
    """The classes two policies differ in, computed from the engine, and how many identities were compared."""

    classes: dict[Key, Seen]
    space: int
    """How many cases of the space were compared."""
    cases: dict[tuple[str, str | None], Case]
    """The space's cases by identity and tenant id."""
    addresses: int

    def counts(self) -> dict[Key, int]:
        """Return each class's count."""
        return {key: seen.count for key, seen in self.classes.items()}


def messages(domain: str, sides: tuple[Policy, Policy]) -> list[tuple[str, Any]]:
    """Every authentication variant's message, made for either policy's boundary: both engines get the same."""
    made: dict[str, Any] = {}
    for variant in AUTH_VARIANTS:
        for policy in sides:
            auth = variant.make(domain, policy)
            made.setdefault(f"{variant.name}: {auth!r}", auth)
    return list(made.items())


def decisions(engine: TrustEngine, policy: Policy, query: Identity | str, mail: list[tuple[str, Any]],
              labels: Iterable[str]) -> dict[tuple[str, str], str]:
    """Return every decision the engine gives ``query``, keyed by (app, where), in the words compare uses."""
    found = {("resolve", ""): engine.resolve(query).trust.value,
             ("dlp", ""): "inside" if engine.dlp([query]).inside_organization else "outside"}
    for where, auth in mail:
        decision = engine.mail(query, auth)
        found["mail", where] = f"{'tagged' if decision.tag_external else 'untagged'} at {decision.trust.value}"
    for action in TEAMS_ACTIONS:
        found[f"teams {action}", ""] = "allowed" if engine.teams(query, action).allowed else "denied"
    for label in labels:
        if label not in policy.labels:
            found[f"label {label!r}", ""] = "label not defined"
        else:
            found[f"label {label!r}", ""] = ", ".join(sorted(engine.label_rights(query, label).rights)) or "no rights"
    return found


def expected_classes(policy: Policy, baseline: Policy, snapshot: Snapshot | None = None) -> Expected:
    """Evaluate both policies on every case of the space (and address of ``snapshot``) and pair their decisions."""
    space, cases = enumerate_space(policy, others=(baseline,))
    labels = sorted({*policy.labels, *baseline.labels})
    classes: dict[Key, Seen] = {}

    def tally(directory: Snapshot, items: Iterable[tuple[Identity | str, str, Rank]]) -> None:
        after, before = TrustEngine(directory, policy), TrustEngine(directory, baseline)
        for query, domain, order in items:
            mail = messages(domain, (policy, baseline))
            old = decisions(before, baseline, query, mail, labels)
            new = decisions(after, policy, query, mail, labels)
            for slot, outcome in old.items():
                if new[slot] == outcome:
                    continue
                key = (slot[0], old["resolve", ""], outcome, new[slot])
                seen = classes.setdefault(key, Seen(0, 0, order))
                seen.count += 1
                seen.from_snapshot += order[0]
                seen.best = min(seen.best, order)

    tally(space, ((c.query, c.domain or "invalid.example", rank(c.identity, c)) for c in cases))
    addresses = sorted(snapshot.addresses()) if snapshot is not None else []
    if snapshot is not None:
        tally(snapshot, ((a, a.rpartition("@")[2], rank(a, None)) for a in addresses))
    return Expected(classes, len(cases), {(c.identity, c.tenant_id): c for c in cases}, len(addresses))


def diff_line(key: Key, before: str, after: str) -> str:
    """Return the head line ``lint --compare`` prints for a class."""
    app, trust, old, new = key
    return f"DIFF {app}, identities at trust {trust}: {old} ({before}) -> {new} ({after})"


COLLABORATION = ("file_sharing", "meeting_lobby_bypass", "people_search", "presence")
MTO_CLASSES = {("mail", "mto_member", "tagged at mto_member", "untagged at mto_member"),
               ("dlp", "mto_member", "outside", "inside"),
               *((f"teams {a}", "mto_member", "denied", "allowed") for a in COLLABORATION)}
"""What the MTO-aware default changes against classic, whatever else differs: members are colleagues."""


@pytest.fixture(name="default_vs_classic", scope="module")
def fixture_default_vs_classic(files: Path) -> Run:
    """``mtotrust lint holding.toml --compare classic`` (holding.toml decides as Policy.default())."""
    return lint(files / "holding.toml", "--compare", "classic")


@pytest.fixture(name="default_expected", scope="module")
def fixture_default_expected() -> Expected:
    """The classes Policy.default() differs from Policy.classic() in, from the engine."""
    return expected_classes(Policy.default(), Policy.classic())


@pytest.fixture(name="example_vs_classic", scope="module")
def fixture_example_vs_classic(files: Path) -> Run:
    """``mtotrust lint examples/policy.toml --compare classic.toml --snapshot mtotrust/sample --json``."""
    return lint(EXAMPLE, "--compare", files / "classic.toml", "--snapshot", SAMPLE, "--json")


@pytest.fixture(name="example_expected", scope="module")
def fixture_example_expected(files: Path) -> Expected:
    """The classes the example policy differs from classic.toml in over the space and the sample's addresses."""
    return expected_classes(Policy.load(EXAMPLE), Policy.load(files / "classic.toml"), Snapshot.load(SAMPLE))


def classes_of(differences: Iterable[dict[str, Any]]) -> dict[Key, int]:
    """Return each reported class's count, keyed as :class:`Expected` keys them."""
    return {(d["app"], d["trust"], d["before"], d["after"]): d["count"] for d in differences}


class TestCompareDefaultWithClassic:
    """``lint --compare classic`` on the default policy lists exactly the classes the engine says differ."""

    def test_lists_every_class(self, default_vs_classic: Run, default_expected: Expected, files: Path) -> None:
        """It exits 0 and prints one DIFF line per class that differs, each with its count, and nothing else."""
        code, out, _ = default_vs_classic
        lines = out.splitlines()
        name = str(files / "holding.toml")
        expected = {diff_line(k, "classic", name): seen.count for k, seen in default_expected.classes.items()}
        shown = {line: lines[i + 1] for i, line in enumerate(lines) if line.startswith("DIFF ")}
        assert EXIT_OK == code
        assert {line: f"  {count} decision(s); minimal counterexample:" for line, count in expected.items()} == shown
        assert f"{len(expected)} decision class(es) differ." == lines[-1]
        assert f": {default_expected.space} identities," in lines[1]

    def test_mto_members_become_colleagues(self, default_vs_classic: Run, files: Path) -> None:
        """Among the classes: member mail untagged, members inside for DLP, the four collaboration actions allowed."""
        shown = set(default_vs_classic.out.splitlines())
        assert {diff_line(k, "classic", str(files / "holding.toml")) for k in MTO_CLASSES} <= shown


class TestCompareExampleWithClassic:
    """``lint --compare FILE --snapshot --json`` of the example policy with a classic one: labels, blocks, a directory.

    The classic side is a file with the example's mail boundary (``TestCompareBoundaries`` is about moving it).
    """

    def test_json_shape(self, example_vs_classic: Run, files: Path) -> None:
        """The JSON names both sides with their fingerprints and carries each class's fields."""
        code, out, _ = example_vs_classic
        data = json.loads(out)
        classic = files / "classic.toml"
        assert EXIT_OK == code
        assert (str(classic), str(EXAMPLE), str(SAMPLE)) == (data["before"], data["after"], data["snapshot"])
        assert (Policy.load(classic).fingerprint, Policy.load(EXAMPLE).fingerprint) == (
            data["fingerprint_before"], data["fingerprint_after"])
        assert data["fingerprint_after"] == data["policy_fingerprint"]
        fields = {"app", "trust", "before", "after", "count", "identity", "key_before", "key_after"}
        assert data["differences"]
        assert all(fields <= set(d) for d in data["differences"])

    def test_classes_and_counts(self, example_vs_classic: Run, example_expected: Expected) -> None:
        """The reported classes and their counts are those of the engine under each policy, snapshot included."""
        data = json.loads(example_vs_classic.out)
        assert example_expected.counts() == classes_of(data["differences"])
        assert MTO_CLASSES <= set(example_expected.classes)

    def test_snapshot_addresses_are_compared(self, example_vs_classic: Run, example_expected: Expected) -> None:
        """With --snapshot the cases are the space's plus one per address, and the addresses add decisions."""
        data = json.loads(example_vs_classic.out)
        assert example_expected.space + example_expected.addresses == data["cases"]
        assert example_expected.addresses > 0
        assert any(seen.from_snapshot for seen in example_expected.classes.values())

    def test_keys_of_each_side(self, example_vs_classic: Run) -> None:
        """Each side's deciding key is that policy's own: the mail threshold, the Teams minimum of the action."""
        by_key = {(d["app"], d["trust"], d["before"], d["after"]): d
                  for d in json.loads(example_vs_classic.out)["differences"]}
        mail = by_key["mail", "mto_member", "tagged at mto_member", "untagged at mto_member"]
        assert ('mail.untagged_at = "internal"', 'mail.untagged_at = "mto_member"') == (
            mail["key_before"], mail["key_after"])
        for action in COLLABORATION:
            teams = by_key[f"teams {action}", "mto_member", "denied", "allowed"]
            assert (f'teams.{action} = "internal"', f'teams.{action} = "mto_member"') == (
                teams["key_before"], teams["key_after"])

    def test_label_only_one_side_defines(self, example_vs_classic: Run) -> None:
        """A label the classic side does not define is 'label not defined' on its side, its key saying so."""
        differences = json.loads(example_vs_classic.out)["differences"]
        undefined = [d for d in differences if d["before"] == "label not defined"]
        assert {f"label {name!r}" for name in Policy.load(EXAMPLE).labels} == {d["app"] for d in undefined}
        assert all(d["key_before"] == f"labels (no {d['app']})" for d in undefined)
        assert not [d for d in differences if d["after"] == "label not defined"]

    def test_block_only_one_side_has(self, example_vs_classic: Run) -> None:
        """A block entry only the policy has is a resolve class to untrusted, decided by overrides.block."""
        resolve = [d for d in json.loads(example_vs_classic.out)["differences"] if d["app"] == "resolve"]
        assert resolve
        for d in resolve:
            assert ("untrusted", None, "overrides.block") == (d["after"], d["key_before"], d["key_after"])
            assert d["identity"] == "ceo@fabrikam.com" or d["identity"].endswith("lookalike.example")

    def test_counterexamples_are_minimal(self, example_vs_classic: Run, example_expected: Expected) -> None:
        """Each class's counterexample is in it and no decision of the class has fewer facts (shortest first)."""
        for d in json.loads(example_vs_classic.out)["differences"]:
            best = example_expected.classes[d["app"], d["trust"], d["before"], d["after"]].best
            assert best[3] == d["identity"]
            if d["attributes"] == "from the given snapshot":
                assert best[0]
                continue
            case = example_expected.cases[d["identity"], d["tenant_id"]]
            assert case.facts is not None
            assert (False, case.facts.describe()) == (best[0], d["attributes"])
            assert best[1] == case.facts.complexity


class TestCompareWithoutDifferences:
    """Policies that decide alike compare as such, whatever their invariants say."""

    def test_copy_differing_in_invariants_only(self, files: Path) -> None:
        """--compare default of a default policy carrying [[invariants]] says no decision differs."""
        code, out, _ = lint(files / "holding.toml", "--compare", "default")
        assert EXIT_OK == code
        assert "no decision differs." == out.splitlines()[-1]
        assert not [line for line in out.splitlines() if line.startswith("DIFF ")]

    def test_with_itself(self, files: Path) -> None:
        """--compare of a policy file with itself has no differences, and both fingerprints are its own."""
        path = files / "violated.toml"
        code, out, _ = lint(path, "--compare", path, "--json")
        data = json.loads(out)
        fingerprint = Policy.load(path).fingerprint
        assert (EXIT_OK, [], fingerprint, fingerprint) == (code, data["differences"], data["fingerprint_before"],
                                                           data["fingerprint_after"])

    def test_missing_policy(self, capsys: pytest.CaptureFixture[str], files: Path) -> None:
        """--compare with a policy file that does not exist exits 2 with one line naming it."""
        code = main(["lint", str(files / "holding.toml"), "--compare", str(files / "missing.toml")])
        _, err = capsys.readouterr()
        assert EXIT_USAGE == code
        assert 1 == len(err.splitlines())
        assert "missing.toml" in err
        assert "Traceback" not in err


class TestCompareBoundaries:
    """The same message is asked of both policies."""

    def test_moved_boundary(self) -> None:
        """Trusting another authserv-id changes what mail stamped by the old one gets: compare must report it."""
        old = Policy.from_data({"mail": {"trusted_authserv_ids": ["mx.contoso.com"]}})
        new = Policy.from_data({"mail": {"trusted_authserv_ids": ["mx2.contoso.com"]}})
        expected = expected_classes(new, old)
        # an MTO member's mail stamped by mx.contoso.com is no longer authenticated: capped, so tagged
        assert ("mail", "mto_member", "untagged at mto_member", "tagged at external") in expected.classes
        assert expected.counts() == classes_of(c.to_dict() for c in compare(new, old).classes)


# -- properties -------------------------------------------------------------------------------------------------

def mirrored(differences: Differences) -> dict[Key, tuple[int, str, str | None]]:
    """Return each class with before and after swapped, its count and counterexample."""
    return {(c.app, c.trust, c.after, c.before): (c.count, c.identity, c.tenant_id) for c in differences.classes}


class TestCompareProperties:
    """compare() over generated policies (few examples: each comparison enumerates the whole space)."""

    @settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(policy=policies())
    def test_with_itself(self, policy: Policy) -> None:
        """A policy compared with itself has no class that differs."""
        assert () == compare(policy, policy).classes

    @settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.filter_too_much])
    @given(a=policies().filter(lambda p: not p.block_entries), b=policies().filter(lambda p: not p.block_entries))
    def test_mirrored(self, a: Policy, b: Policy) -> None:
        """Without block entries (the only policy input to trust), swapping the sides mirrors every class."""
        assume(a.fingerprint != b.fingerprint)
        forward, backward = compare(a, b), compare(b, a)
        assert mirrored(forward) == {(c.app, c.trust, c.before, c.after): (c.count, c.identity, c.tenant_id)
                                     for c in backward.classes}
