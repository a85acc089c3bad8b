"""What every ``mtotrust`` command shares: exit codes, the usage error, loading inputs, the progress bar.

This module is imported for ``mtotrust --help``, so it imports nothing heavy at module level: the snapshot, the
policy and the engine are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from mtotrust._errors import MtoTrustError

if TYPE_CHECKING:
    from mtotrust._engine import TrustEngine
    from mtotrust._model import Identity, MailAuth
    from mtotrust._policy import Policy
    from mtotrust._snapshot import Snapshot

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "ProgressBar",
    "UsageError",
    "app_report",
    "load_policy",
    "load_snapshot",
    "name_command",
    "require_extra",
    "run_guarded",
]

EXIT_OK = 0
"""The command ran and found nothing wrong."""
EXIT_PROBLEMS = 1
"""The command ran and found problems (``lint``: an invariant is violated)."""
EXIT_USAGE = 2
"""Bad usage or input: one line on stderr naming the problem, never a traceback."""
EXIT_INTERNAL = 3
"""A bug in mtotrust: one line on stderr asking for a report."""

_COMMAND: contextvars.ContextVar[str | None] = contextvars.ContextVar("mtotrust_cli_command", default=None)


class UsageError(Exception):
    """Bad usage or input; the message is the one line printed on stderr, and the exit code is ``EXIT_USAGE``."""


def run_guarded(body: Callable[[], int], *, command: str | None = None, program: bool = False) -> int:
    """Run ``body`` and turn what it raises into an exit code and one line on stderr (never a traceback).

    Args:
        body: the command; returns its exit code.
        command: the sub-command being run (``check``), named by :func:`require_extra`'s message.
        program: this process is the ``mtotrust`` program (not a caller of :func:`mtotrust.cli.main`), so when
            stdout is closed early it may be pointed at the null device to keep the interpreter's exit quiet.

    Returns:
        ``body``'s exit code; ``EXIT_USAGE`` for a :class:`UsageError` or a :class:`~mtotrust.MtoTrustError`
        (bad input), ``EXIT_OK`` when stdout is closed early (``| head``), ``EXIT_INTERNAL`` for anything else.
    """
    token = _COMMAND.set(command)
    try:
        return body()
    except UsageError as exc:
        _say(str(exc))
        return EXIT_USAGE
    except MtoTrustError as exc:
        _say(f"mtotrust: error: {exc}")
        return EXIT_USAGE
    except BrokenPipeError:
        if program:
            _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the one place that turns a bug into exit code 3, not a traceback
        _say(f"mtotrust: internal error: {type(exc).__name__}: {exc}; please report it")
        return EXIT_INTERNAL
    finally:
        _COMMAND.reset(token)


def name_command(command: str) -> None:
    """Record the sub-command being run, for :func:`require_extra`'s message (until :func:`run_guarded` returns)."""
    _COMMAND.set(command)


def _say(message: str) -> None:
    print(" ".join(message.splitlines()), file=sys.stderr)


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's final flush into the closed pipe stays quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def require_extra(extra: str, module: str) -> ModuleType:
    """Import ``module``, an optional dependency that the ``extra`` of mtotrust installs.

    A command that needs an extra calls this first, so that a plain install answers with the line to run
    instead of a traceback.

    Returns:
        The imported module.

    Raises:
        UsageError: ``module`` (or something it needs) is not installed; the message names the command and
            the ``pip install`` line.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        command = _COMMAND.get()
        who = f"mtotrust {command}" if command else "mtotrust"
        raise UsageError(f"{who} needs the '{extra}' extra: pip install 'mtotrust[{extra}]'") from None


class ProgressBar:
    """A one-line progress bar on a terminal's stderr; the CLI uses it only when stderr is a TTY."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._shown = ""

    def __call__(self, done: int, total: int, what: str) -> None:
        filled = self._width * done // total if total else self._width
        line = f"\rloading {what}: [{'#' * filled}{'.' * (self._width - filled)}] {done}/{total}"
        if line != self._shown:
            self._stream.write(line)
            self._stream.flush()
            self._shown = line

    def close(self) -> None:
        """Erase the bar."""
        if self._shown:
            self._stream.write("\r" + " " * len(self._shown) + "\r")
            self._stream.flush()


@contextlib.contextmanager
def _progress() -> Iterator[ProgressBar | None]:
    if not sys.stderr.isatty():
        yield None
        return
    bar = ProgressBar(sys.stderr)
    try:
        yield bar
    finally:
        bar.close()


def load_snapshot(path: str | None) -> Snapshot:
    """Load the snapshot at ``path`` (folder or ``.sqlite`` store); ``None`` is the bundled sample, said on stderr.

    On a terminal a progress bar is drawn on stderr while loading, and erased.
    """
    from mtotrust._snapshot import Snapshot

    if path is None:
        print("mtotrust: no --snapshot given; using the bundled sample MTO (Contoso)", file=sys.stderr)
        return Snapshot.sample()
    with _progress() as bar:
        return Snapshot.load(path) if bar is None else Snapshot.load(path, progress=bar)


def load_policy(path: str | None) -> Policy:
    """Load the policy file at ``path`` (TOML or JSON); ``None`` is :meth:`Policy.default`."""
    from mtotrust._policy import Policy

    return Policy.default() if path is None else Policy.load(path)


def app_report(engine: TrustEngine, identity: Identity, auth: list[str] | MailAuth | None) -> dict[str, Any]:
    """Every app's decision for one identity: the object ``check --json`` and ``demo --json`` print.

    The keys are the resolution's own (``trust``, ``reasons``, ``address``, ``user_id``, ``home_tenant_id`` ...),
    then ``identity`` (the text as given), ``tenant_id`` (as given), and one entry per app: ``mail``
    (``tag_external``), ``dlp`` (``inside_organization``), ``teams`` (action -> allowed) and ``labels`` (label ->
    sorted usage rights), then ``snapshot_id`` and ``policy_fingerprint``. Scripts parse this shape: add keys,
    never rename or drop one.
    """
    from mtotrust._policy import TEAMS_ACTIONS

    policy = engine.policy
    resolution = engine.resolve(identity).to_dict()
    origin = {key: resolution.pop(key) for key in ("snapshot_id", "policy_fingerprint")}
    return {
        **resolution,
        "identity": identity.address,  # as given; the resolution's normal form is "address"
        "tenant_id": identity.tenant_id,
        "mail": {"tag_external": engine.mail(identity, auth).tag_external},
        "dlp": {"inside_organization": engine.dlp([identity]).inside_organization},
        "teams": {action: engine.teams(identity, action).allowed for action in TEAMS_ACTIONS},
        "labels": {label: sorted(engine.label_rights(identity, label).rights) for label in sorted(policy.labels)},
        **origin,  # what it was decided from: last, so the older keys keep their places
    }
