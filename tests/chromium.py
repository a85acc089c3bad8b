"""Headless Chromium for the tests of the HTML reports: the DOM after load, a screenshot, a printout.

:class:`Chromium` runs the installed ``chromium`` (Debian's package; ``.ci/run`` installs it) once per page, in
headless mode with a fresh profile (``--user-data-dir``) under the folder it is given, so no run sees another's
state and the user's own profile is never touched. ``--no-sandbox`` is there because the tests run as root in CI
(Chromium refuses to start its sandbox as root); the other switches keep it from reaching out to the network
(component updates, sync, background requests) and from showing first-run pages. See
https://developer.chrome.com/docs/chromium/headless for ``--dump-dom``, ``--screenshot`` and ``--print-to-pdf``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PACKAGE", "PNG_SIGNATURE", "Chromium", "chromium_command"]

PACKAGE = "chromium"
"""The Debian package that provides the ``chromium`` command (``.ci/run`` installs it)."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SWITCHES = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage",
    "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
)


def chromium_command() -> str | None:
    """Return the path of the installed ``chromium`` command, or None."""
    return shutil.which(PACKAGE) or shutil.which(PACKAGE, path="/usr/bin")


class Chromium:
    """The installed Chromium, run headless once per call with a fresh profile under ``root``.

    ``timeout`` bounds each run in seconds; a run that fails or times out raises AssertionError with Chromium's
    standard error.
    """

    def __init__(self, root: Path, *, timeout: float = 30.0) -> None:
        command = chromium_command()
        if command is None:
            raise RuntimeError(f"the {PACKAGE!r} command is not installed: apt-get install {PACKAGE}")
        self._command = command
        self.root = root
        self.timeout = timeout

    def dump_dom(self, url: str) -> str:
        """Return the serialized DOM of ``url`` after its load event (its scripts have run)."""
        return self._run("--dump-dom", url)

    def screenshot(self, url: str, path: Path, *, width: int = 1280, height: int = 1600) -> bytes:
        """Save a PNG of ``url`` in a ``width`` x ``height`` window to ``path``; return its bytes."""
        self._run(f"--screenshot={path}", f"--window-size={width},{height}", url)
        if not path.exists():
            raise AssertionError(f"Chromium wrote no screenshot to {path}")
        return path.read_bytes()

    def print_pdf(self, url: str, path: Path) -> bytes:
        """Print ``url`` to a PDF at ``path`` (print media, no header or footer); return its bytes."""
        self._run(f"--print-to-pdf={path}", "--no-pdf-header-footer", url)
        if not path.exists():
            raise AssertionError(f"Chromium wrote no PDF to {path}")
        return path.read_bytes()

    def _run(self, *args: str) -> str:
        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=self.root)
        command = [self._command, *SWITCHES, f"--user-data-dir={profile}", *args]
        # A session of its own: on a timeout the browser goes with every process it started (renderer, GPU ...).
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) as browser:
            try:
                out, err = browser.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                os.killpg(browser.pid, signal.SIGKILL)
                _, err = browser.communicate()
                raise AssertionError(f"{' '.join(command)} took more than {self.timeout} s:\n{err}") from None
        if browser.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {browser.returncode}:\n{err}")
        return out
