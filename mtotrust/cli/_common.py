"""What every ``mtotrust`` command shares: exit codes, the usage error, arguments, inputs, output, the progress bar.

This module is imported for ``mtotrust --help``, so it imports nothing heavy at module level: the snapshot, the
policy and the engine are imported inside the functions that need them.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import errno
import importlib
import json
import os
import re
import secrets
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TextIO

from mtotrust._errors import MtoTrustError

if TYPE_CHECKING:
    import argparse

    from mtotrust._engine import TrustEngine
    from mtotrust._policy import Policy
    from mtotrust._snapshot import Snapshot

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "OutputError",
    "ProgressBar",
    "UsageError",
    "atomic_file",
    "hangup",
    "host_port",
    "load_policy",
    "load_snapshot",
    "name_command",
    "os_text",
    "output",
    "output_json",
    "progress",
    "reload_inputs",
    "require_extra",
    "run_guarded",
    "signals_blocked",
    "warn_unbounded",
]

EXIT_OK = 0
"""The command ran and found nothing wrong."""
EXIT_PROBLEMS = 1
"""The command ran and found problems (``lint``: an invariant is violated)."""
EXIT_USAGE = 2
"""Bad usage or input, or the output cannot be written: one line on stderr naming the problem, never a traceback."""
EXIT_INTERNAL = 3
"""A bug in mtotrust: one line on stderr asking for a report."""

_COMMAND: contextvars.ContextVar[str | None] = contextvars.ContextVar("mtotrust_cli_command", default=None)


class UsageError(Exception):
    """Bad usage or input; the message is the one line printed on stderr, and the exit code is ``EXIT_USAGE``."""


class OutputError(UsageError):
    """Standard output cannot be written (a full disk, an I/O error): exit code ``EXIT_USAGE``, one stderr line.

    A reader that stops reading (``| head``) is no error: that stays a :exc:`BrokenPipeError`, and exit code 0.
    """


def run_guarded(body: Callable[[], int], *, command: str | None = None, program: bool = False) -> int:
    """Run ``body`` and turn what it raises into an exit code and one line on stderr (never a traceback).

    Standard output is flushed before returning, so an output error is reported here, not by the interpreter
    at exit (exit code 120 and an "Exception ignored" message); ``--help`` and ``--version`` output too.

    Args:
        body: the command; returns its exit code.
        command: the sub-command being run (``check``), named by :func:`require_extra`'s message.
        program: this process is the ``mtotrust`` program (not a caller of :func:`mtotrust.cli.main`), so when
            stdout is closed early or cannot be written it may be pointed at the null device to keep the
            interpreter's exit quiet.

    Returns:
        ``body``'s exit code; ``EXIT_USAGE`` for a :class:`UsageError`, a :class:`~mtotrust.MtoTrustError` (bad
        input) or an :class:`OutputError`, ``EXIT_OK`` when stdout is closed early (``| head``),
        ``EXIT_INTERNAL`` for anything else.
    """
    token = _COMMAND.set(command)
    try:
        try:
            code = body()
        except SystemExit:  # --help or --version printed their answer: it must reach the reader as well
            _flush_stdout()
            raise
        _flush_stdout()
        return code
    except OutputError as exc:
        _say(str(exc))
        if program:
            _silence_stdout()
        return EXIT_USAGE
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


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    """Turn an error writing stdout into an :class:`OutputError` (a closed pipe stays a BrokenPipeError)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"mtotrust: cannot write the output ({exc.strerror or exc})") from None


def _flush_stdout() -> None:
    if sys.stdout is not None:
        with _writing():
            sys.stdout.flush()


def output(text: str = "", *, end: str = "\n") -> None:
    """Print ``text`` and ``end`` on stdout, as :func:`print` does.

    Raises:
        OutputError: stdout cannot be written (a full disk: "No space left on device").
        BrokenPipeError: its reader has stopped reading.
    """
    with _writing():
        print(text, end=end)


def output_json(data: object) -> None:
    """Print ``data`` as indented JSON on stdout (:func:`output`).

    Text stays as it is where stdout's encoding is a Unicode one (or stdout holds text, a ``StringIO``);
    elsewhere (``LC_ALL=C``) every non-ASCII character is a JSON escape, so the output is still JSON with the
    same strings.
    """
    encoding = getattr(sys.stdout, "encoding", None)
    escape = encoding is not None and not codecs.lookup(encoding).name.startswith("utf")
    output(json.dumps(data, indent=2, ensure_ascii=escape))


_ESCAPED = re.compile("[\udc80-\udcff]")


def os_text(text: str) -> str:
    r"""Return a command-line argument as the terminal typed it: its bytes read as UTF-8 where the locale failed.

    Python decodes ``argv`` with the locale's encoding; under ``LC_ALL=C`` (ASCII) every non-ASCII byte becomes a
    surrogate escape, so ``josé@contoso.com`` would arrive as ``jos\udcc3\udca9@contoso.com``. Such an
    argument's bytes (:func:`os.fsencode`) are decoded as UTF-8, what terminals send; an argument without escapes
    (the locale decoded it) or whose bytes are not UTF-8 is returned unchanged. File names are not passed
    through this: the file system wants them as the locale gave them.
    """
    if _ESCAPED.search(text) is None:
        return text
    try:
        return os.fsencode(text).decode("utf-8")
    except UnicodeError:
        return text


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
    """A one-line progress bar on a terminal's stderr; the CLI uses it only when stderr is a TTY.

    It is called as ``bar(done, total, what)`` and draws ``{verb} {what}: [###...] done/total``.
    """

    def __init__(self, stream: TextIO, width: int = 30, *, verb: str = "loading") -> None:
        self._stream = stream
        self._width = width
        self._verb = verb
        self._shown = ""

    def __call__(self, done: int, total: int, what: str) -> None:
        filled = self._width * done // total if total else self._width
        line = f"\r{self._verb} {what}: [{'#' * filled}{'.' * (self._width - filled)}] {done}/{total}"
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
def progress(verb: str = "loading") -> Iterator[ProgressBar | None]:
    """Yield a :class:`ProgressBar` on stderr (erased at the end) when stderr is a terminal, else ``None``."""
    if sys.stderr is None or not sys.stderr.isatty():
        yield None
        return
    bar = ProgressBar(sys.stderr, verb=verb)
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
    with progress() as bar:
        return Snapshot.load(path) if bar is None else Snapshot.load(path, progress=bar)


def load_policy(path: str | None, fingerprint: str | None = None) -> Policy:
    """Load the policy file at ``path`` (TOML or JSON); ``None`` is :meth:`Policy.default`.

    Args:
        path: the ``--policy`` file, or ``None``.
        fingerprint: ``--policy-fingerprint``: the reviewed policy's fingerprint, which the policy used (the
            file's or the default) must have.

    Raises:
        PolicyError: the file cannot be read or is no valid policy, or its fingerprint is not ``fingerprint``.
    """
    from mtotrust._policy import Policy, require_fingerprint

    if path is not None:
        return Policy.load(path, expect_fingerprint=fingerprint)
    policy = Policy.default()
    return policy if fingerprint is None else require_fingerprint(policy, fingerprint, source="the default policy")


# -- the long-running commands (filter, serve) --------------------------------------------------------------------

_SIGNALS = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT}


def host_port(text: str, option: str, *, example: str = "127.0.0.1:10025") -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[::1]:25`` for IPv6); the port is ASCII digits, 0 to 65535.

    Raises:
        UsageError: ``text`` is not that; the message names the command, ``option`` and the value.
    """
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise UsageError(f"mtotrust {_COMMAND.get() or 'command'}: {option} {text!r} is not HOST:PORT, such as "
                         f"{example}")
    return host, int(port)


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Block SIGHUP, SIGTERM and SIGINT in this thread and the threads it starts, for :func:`hangup` to take.

    Enter it before any thread starts (threads inherit the mask); the mask is restored on exit, for a caller of
    ``main()`` in-process.
    """
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def hangup() -> bool:
    """Wait for one of the blocked signals: true for SIGHUP (reload), false for SIGTERM or SIGINT (stop)."""
    return signal.sigwait(_SIGNALS) == signal.SIGHUP


def reload_inputs(args: argparse.Namespace, apply: Callable[[Snapshot | None, Policy | None], TrustEngine]) -> None:
    """SIGHUP: read ``--policy`` and ``--snapshot`` again and ``apply`` them; on any error keep what runs.

    ``apply`` swaps them in and returns the engine now deciding. stderr says what happened either way.
    """
    command = _COMMAND.get() or "command"
    try:
        policy = load_policy(args.policy) if args.policy else None
        snapshot = load_snapshot(args.snapshot) if args.snapshot else None
        engine = apply(snapshot, policy)
    except (MtoTrustError, OSError) as exc:
        print(f"mtotrust {command}: reload failed, keeping the current snapshot and policy: {exc}", file=sys.stderr,
              flush=True)
        return
    print(f"mtotrust {command}: reloaded; snapshot {engine.snapshot.id}, policy {engine.policy.fingerprint}",
          file=sys.stderr, flush=True)
    warn_unbounded(engine.policy)


def warn_unbounded(policy: Policy) -> None:
    """Warn on stderr when the policy sets no ``[snapshot] max_age``: a long-running command then never goes stale."""
    if policy.snapshot.max_age is None:
        print(f"mtotrust {_COMMAND.get() or 'command'}: warning: [snapshot] max_age is not set, so a directory that "
              "stopped syncing keeps granting trust; set it (for example max_age = \"24h\")", file=sys.stderr,
              flush=True)


@contextlib.contextmanager
def atomic_file(path: str, option: str) -> Iterator[Path]:
    """Yield a new temporary file beside ``path`` to write; on success it becomes ``path`` in one rename.

    The temporary file is created at once, so an ``option`` naming nothing, a folder, or a place that cannot be
    written is said before any work. When the block ends without an error the file is flushed to disk and renamed
    over ``path`` (a symbolic link is followed: its target is replaced; a file replaced keeps its mode, a new one
    gets ``0o666`` under the umask). On any error the file at ``path`` is unchanged and the temporary one removed.

    Raises:
        UsageError: the file cannot be written; one line naming the command, ``option`` and ``path``.
    """
    command = f"mtotrust {_COMMAND.get() or 'command'}"
    if not path:
        raise UsageError(f"{command}: {option} needs a file name (got an empty one)")
    where = f"{command}: cannot write {option} {path!r}"
    target = Path(os.path.realpath(path))
    if not target.parent.is_dir():
        raise UsageError(f"{where}: no folder {str(target.parent)!r}")
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "it is a folder")
        mode = target.stat().st_mode & 0o7777 if target.exists() else None
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            if mode is not None:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
    except OSError as exc:
        raise UsageError(f"{where}: {exc.strerror or exc}") from None
    try:
        yield temp
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        temp.replace(target)
    except OSError as exc:
        raise UsageError(f"{where}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):  # gone already once renamed
            temp.unlink()

