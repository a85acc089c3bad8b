"""User invariants: the policy's own ``[[invariants]]`` and ``@invariant`` functions, checked like the built-ins.

A user invariant is a scope (:class:`~mtotrust._policy.InvariantScope`: an app and filters on the identity's
trust, its home tenant's state and partner flag, the mail's authentication, the label or the Teams action) and
a check: the expectations of a declarative :class:`~mtotrust._policy.InvariantRule`, or a Python function of the
:class:`Point` and the decision. :meth:`UserInvariant.bind` makes it an
:class:`~mtotrust._verify.invariants.Invariant` over the same observations as the built-ins, so it is reported
the same way (count, minimal counterexample, the deciding policy key).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pydantic

from mtotrust._errors import PolicyError, shown
from mtotrust._model import DlpDecision, LabelDecision, MailDecision, Resolution, TeamsDecision, Trust
from mtotrust._policy import TEAMS_ACTIONS, InvariantRule, InvariantScope, Policy, _policy_error, expand_grant
from mtotrust._verify.invariants import Invariant, Violation
from mtotrust._verify.observe import Observation
from mtotrust._verify.space import AUTH_VARIANTS, Case, Facts

__all__ = ["Point", "UserInvariant", "declared", "invariant", "load_module"]

AppDecision = Resolution | MailDecision | DlpDecision | TeamsDecision | LabelDecision
Check = Callable[["Point", Any], bool]


@attrs.frozen(slots=True)
class Point:
    """One decision of the exhaustive space, as a user invariant sees it: who, where from, and in which app.

    ``trust`` is the identity's own trust (its resolution, before mail's authentication cap; the decision
    carries the trust it decided with). ``tenant_state`` is where it is at home (see
    :data:`~mtotrust._policy.TENANT_STATES`), ``partner`` its home tenant's partner flag (``absent``, ``true``,
    ``false``, ``null``). For mail, ``auth`` names the authentication variant and ``authentication`` says what
    it amounts to under the policy (``pass``, ``fail`` or ``none``); ``label`` and ``action`` name the label or
    Teams action. ``facts`` is the full point of the attribute space (``None`` for an address of a given
    snapshot).

    .. versionadded:: 0.2.0
    """

    app: str
    identity: str
    tenant_id: str | None
    trust: Trust
    tenant_state: str
    partner: str
    facts: Facts | None
    auth: str | None = None
    authentication: str | None = None
    label: str | None = None
    action: str | None = None

    @property
    def where(self) -> str:
        """Name the decision's place as findings do: ``mail (auth: dmarc_pass)``, ``label 'Confidential'``."""
        if self.app == "mail":
            return f"mail (auth: {self.auth})"
        if self.app == "labels":
            return f"label {self.label!r}"
        if self.app == "teams":
            return f"teams {self.action}"
        return self.app


def _as_set(value: object) -> frozenset[Any] | None:
    if value is None:
        return None
    return frozenset(value) if isinstance(value, list) else frozenset({value})


@attrs.frozen(slots=True)
class _Scope:
    """An :class:`InvariantScope` read once into sets, and the points of an observation it speaks of."""

    app: str
    trusts: frozenset[Trust]
    states: frozenset[str] | None
    partners: frozenset[str] | None
    authentications: frozenset[str] | None
    labels: frozenset[str] | None
    actions: frozenset[str] | None

    @classmethod
    def of(cls, scope: InvariantScope) -> _Scope:
        trusts = frozenset(Trust(t) for t in _as_set(scope.trust) or {t.value for t in Trust})
        low = Trust(scope.trust_at_least) if scope.trust_at_least else None
        high = Trust(scope.trust_at_most) if scope.trust_at_most else None
        trusts = frozenset(t for t in trusts if (low is None or t >= low) and (high is None or t <= high))
        return cls(scope.app, trusts, _as_set(scope.tenant_state), _as_set(scope.partner),
                   _as_set(scope.authentication), _as_set(scope.label), _as_set(scope.action))

    def points(self, obs: Observation, policy: Policy) -> Iterator[tuple[Point, AppDecision]]:
        """Yield every (point, decision) of ``obs`` in this scope."""
        case: Case = obs.case
        trust = obs.resolution.trust
        state = "unknown" if case.home_state == "invalid" else case.home_state
        if trust not in self.trusts or (self.states is not None and state not in self.states) \
                or (self.partners is not None and case.partner not in self.partners):
            return
        who = (self.app, case.identity, case.tenant_id, trust, state, case.partner, case.facts)
        if self.app == "resolve":
            yield Point(*who), obs.resolution
        elif self.app == "dlp":
            yield Point(*who), obs.dlp
        elif self.app == "mail":
            for variant in AUTH_VARIANTS:
                passed, failed = variant.meaning(policy, case.local)
                outcome = "pass" if passed else "fail" if failed else "none"
                if self.authentications is None or outcome in self.authentications:
                    yield Point(*who, auth=variant.name, authentication=outcome), obs.mail[variant.name]
        elif self.app == "teams":
            for action in TEAMS_ACTIONS:
                if self.actions is None or action in self.actions:
                    yield Point(*who, action=action), obs.teams[action]
        else:
            for label, decision in obs.labels.items():
                if self.labels is None or label in self.labels:
                    yield Point(*who, label=label), decision


def _decided_trust(decision: AppDecision) -> Trust:
    return decision.recipients[0].trust if isinstance(decision, DlpDecision) else decision.trust


def _rights(grant: object) -> frozenset[str]:
    return expand_grant(grant)  # type: ignore[arg-type]  # a LabelGrant, validated by the rule


def _show(rights: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(rights)) + "}" if rights else "no rights"


def _expectations(rule: InvariantRule) -> Callable[[Point, Any], str | None]:
    """Return the check of a declarative rule: ``None`` where every expectation holds, else what failed."""
    tests: list[Callable[[Point, Any], str | None]] = []
    if rule.expect is not None:
        tests.append(_OUTCOMES[rule.expect])
    if rule.rights_at_most is not None:
        most = _rights(rule.rights_at_most)
        tests.append(lambda _p, d: None if d.rights <= most else
                     f"grants {_show(d.rights)}: {_show(d.rights - most)} beyond rights_at_most {_show(most)}")
    if rule.rights_at_least is not None:
        least = _rights(rule.rights_at_least)
        tests.append(lambda _p, d: None if d.rights >= least else
                     f"grants {_show(d.rights)}: {_show(least - d.rights)} missing from rights_at_least")
    if rule.rights_exclude is not None:
        excluded = _rights(rule.rights_exclude)
        tests.append(lambda _p, d: None if not d.rights & excluded else
                     f"grants {_show(d.rights & excluded)}, which rights_exclude forbids")
    if rule.expect_trust_at_most is not None:
        most_trust = Trust(rule.expect_trust_at_most)
        tests.append(lambda _p, d: None if _decided_trust(d) <= most_trust else
                     f"decided at trust {_decided_trust(d)}, above expect_trust_at_most {most_trust}")
    if rule.expect_trust_at_least is not None:
        least_trust = Trust(rule.expect_trust_at_least)
        tests.append(lambda _p, d: None if _decided_trust(d) >= least_trust else
                     f"decided at trust {_decided_trust(d)}, below expect_trust_at_least {least_trust}")

    def check(point: Point, decision: Any) -> str | None:
        for test in tests:
            problem = test(point, decision)
            if problem is not None:
                return problem
        return None
    return check


_OUTCOMES: dict[str, Callable[[Point, Any], str | None]] = {
    "tagged": lambda _p, d: None if d.tag_external else f"mail at trust {d.trust} is not tagged [External]",
    "untagged": lambda _p, d: None if not d.tag_external else f"mail at trust {d.trust} is tagged [External]",
    "inside": lambda p, d: None if d.inside_organization else f"a recipient at trust {p.trust} counts outside",
    "outside": lambda p, d: None if not d.inside_organization else f"a recipient at trust {p.trust} counts inside",
    "allowed": lambda _p, d: None if d.allowed else f"{d.action} denied at trust {d.trust}",
    "denied": lambda _p, d: None if not d.allowed else f"{d.action} allowed at trust {d.trust}",
    "no_rights": lambda _p, d: None if not d.rights else f"grants {_show(d.rights)} at trust {d.trust}",
}
"""What each ``expect`` word checks, and what it says when the decision is otherwise."""


@attrs.frozen(slots=True)
class UserInvariant:
    """A user invariant: a scope and a check (a declarative rule's expectations, or a Python function).

    Made by ``[[invariants]]`` in a policy file (:func:`declared`) or by :func:`invariant`; ``bind(policy)``
    turns it into an :class:`~mtotrust._verify.invariants.Invariant` the verifier checks like a built-in. A
    decorated function stays callable as it was written.

    .. versionadded:: 0.2.0
    """

    scope: InvariantScope
    summary: str
    function: Check | None = None
    origin: str = ""

    @property
    def name(self) -> str:
        """The invariant's name, as findings and test items carry it."""
        return self.scope.name

    def __call__(self, point: Point, decision: Any) -> bool:
        """Call the decorated function (a declarative invariant is not callable)."""
        if self.function is None:
            raise TypeError(f"invariant {self.name!r} is declarative; verify it with mtotrust lint")
        return self.function(point, decision)

    def bind(self, policy: Policy, examined: list[int] | None = None) -> Invariant:
        """Return this invariant as the verifier checks it against ``policy``.

        ``examined``, if given, is a one-item list that counts the decisions the invariant is checked on.

        Raises:
            PolicyError: the invariant names a label ``policy`` does not define (key ``label``): it would speak
                of no decision and hold vacuously.
        """
        for label in _as_set(self.scope.label) or ():
            if label not in policy.labels:
                known = ", ".join(repr(n) for n in sorted(policy.labels)) or "none"
                raise PolicyError(f"invariant {self.name!r} ({self.origin}): unknown label {shown(label)}; the "
                                  f"policy defines {known}", key="label", value=label)
        scope = _Scope.of(self.scope)
        test = _expectations(self.scope) if isinstance(self.scope, InvariantRule) else self._called

        def check_case(obs: Observation, policy: Policy) -> Iterator[Violation]:
            for point, decision in scope.points(obs, policy):
                if examined is not None:
                    examined[0] += 1
                problem = test(point, decision)
                if problem is not None:
                    yield Violation(obs, point.where, problem, decision)
        return Invariant(self.name, self.summary, check_case)

    def _called(self, point: Point, decision: Any) -> str | None:
        """Run the function on one point; a non-bool answer or an exception is the invariant's own error."""
        assert self.function is not None
        try:
            held = self.function(point, decision)
        except Exception as exc:
            raise PolicyError(f"invariant {self.name!r} ({self.origin}) raised {type(exc).__name__}: {exc} on "
                              f"{point.identity!r} in {point.where}; an invariant must answer every point",
                              key=self.name, value=point.identity) from exc
        if held is True:
            return None
        if held is False:
            return f"{self.origin} returned False"
        raise PolicyError(f"invariant {self.name!r} ({self.origin}) returned {shown(held)} on {point.identity!r}; "
                          "it must return True (holds) or False (violated)", key=self.name, value=held)


def declared(policy: Policy) -> tuple[UserInvariant, ...]:
    """Return the policy's own ``[[invariants]]``, in file order."""
    return tuple(UserInvariant(rule, _summary(rule), origin=f"invariants.{i}")
                 for i, rule in enumerate(policy.invariants))


def _summary(rule: InvariantRule) -> str:
    """Say what a declarative rule states, in its own words (``app=labels label=Confidential … expect=no_rights``)."""
    words = [f"{key}={value}" for key, value in rule.model_dump(exclude={"name"}, exclude_none=True).items()]
    return "policy invariant: " + " ".join(words)


def invariant(*, app: str, name: str | None = None, **scope: Any) -> Callable[[Check], UserInvariant]:
    """Make a Python function a user invariant: ``function(point, decision)`` returns whether it holds.

    ``app`` and ``scope`` take the same words as ``[[invariants]]`` (``trust_at_most="guest"``,
    ``tenant_state="removed"``, ``label="Confidential"`` …; see docs/testing.md): the function is called for every
    decision of the exhaustive space in that scope, with the :class:`Point` and the app's decision, and must
    return ``True`` (holds) or ``False`` (violated). ``name`` defaults to the function's name, the summary to
    its docstring's first line. ``mtotrust lint --invariants module.py`` and the pytest plugin find every
    invariant a module defines.

    Raises:
        PolicyError: for a word or value the scope does not allow, naming it.

    .. versionadded:: 0.2.0
    """
    def wrap(fn: Check) -> UserInvariant:
        label = name or fn.__name__
        data = {"name": label, "app": app, **scope}
        try:
            rule = InvariantScope.model_validate(data)
        except pydantic.ValidationError as exc:
            raise _policy_error(exc, f"@invariant {label!r}") from None
        doc = inspect.getdoc(fn)
        code = getattr(fn, "__code__", None)
        where = f"{Path(code.co_filename).name}:{code.co_firstlineno} {fn.__qualname__}" if code else fn.__qualname__
        return UserInvariant(rule, doc.splitlines()[0] if doc else f"Python invariant {where}", fn, where)
    return wrap


def load_module(path: str | os.PathLike[str]) -> tuple[UserInvariant, ...]:
    """Import the Python file ``path`` and return every user invariant it defines, in definition order.

    Raises:
        PolicyError: the file cannot be read or imported (naming the error), or defines no invariant.
    """
    p = Path(path)
    name = f"mtotrust_invariants_{abs(hash(str(p.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None or not p.is_file():
        raise PolicyError(f"invariants module {str(p)!r} is not a Python file that can be imported", value=str(p))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except PolicyError as exc:  # an @invariant with a bad word: name the file too
        del sys.modules[name]
        raise PolicyError(f"invariants module {str(p)!r}: {exc}", key=exc.key, value=exc.value) from None
    except Exception as exc:
        del sys.modules[name]
        raise PolicyError(f"invariants module {str(p)!r} cannot be imported: {type(exc).__name__}: {exc}",
                          value=str(p)) from exc
    found = tuple(dict.fromkeys(v for v in vars(module).values() if isinstance(v, UserInvariant)))
    if not found:
        raise PolicyError(f"invariants module {str(p)!r} defines no invariant; decorate a function of (point, "
                          "decision) with @mtotrust.testing.invariant", value=str(p))
    return found
