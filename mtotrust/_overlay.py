"""Layered mappings: a shared base dict overlaid by a small dict of changes.

A snapshot derived by a delta shares its parent's dictionaries and keeps only what changed in an overlay, so
applying a delta costs its own size, not the directory's. :class:`Overlay` is the mutable side a delta is
applied to; :class:`Layered` the read-only mapping a snapshot serves. Both behave exactly like a ``dict``
(order included), which ``tests/test_overlay.py`` checks against one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["MISSING", "Layered", "Overlay"]

MISSING: Any = object()
"""A sentinel for "no entry" where ``None`` means "removed"."""


class Layered(Mapping[str, Any]):
    """A read-only mapping: a shared base dict overlaid by a small dict of changes.

    ``over`` maps a key to its new value, or to ``None`` when the key is gone. ``moved`` holds base keys that
    were removed and added again: like a dict, they now iterate after the base keys.
    """

    __slots__ = ("_base", "_len", "_moved", "_over")

    def __init__(self, base: dict[str, Any], over: dict[str, Any], moved: set[str], length: int) -> None:
        self._base, self._over, self._moved, self._len = base, over, moved, length

    @property
    def base(self) -> dict[str, Any]:
        """The shared base dict (never changed through this view)."""
        return self._base

    @property
    def over(self) -> dict[str, Any]:
        """The changes: key → new value, or ``None`` for a removed key."""
        return self._over

    @property
    def moved(self) -> set[str]:
        """Base keys removed and added again (they iterate after the base keys)."""
        return self._moved

    @property
    def len(self) -> int:
        """The number of keys."""
        return self._len

    def __getitem__(self, key: str) -> Any:
        value = self._over.get(key, MISSING)
        if value is MISSING:
            return self._base[key]
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._over.get(key, MISSING)
        if value is MISSING:
            return self._base.get(key, default)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        value = self._over.get(key, MISSING)  # type: ignore[call-overload]
        if value is MISSING:
            return key in self._base
        return value is not None

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        over, moved, base = self._over, self._moved, self._base
        for key in base:
            if key not in over or (over[key] is not None and key not in moved):
                yield key
        for key, value in over.items():
            if value is not None and (key not in base or key in moved):
                yield key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.items())!r})"


class Overlay:
    """The mutable overlay a delta is applied to (copied from the parent's, so the parent never changes)."""

    __slots__ = ("base", "len", "moved", "over")

    def __init__(self, view: Mapping[str, Any]) -> None:
        if isinstance(view, Layered):
            self.base, self.over, self.moved, self.len = view.base, dict(view.over), set(view.moved), view.len
        else:
            self.base, self.over, self.moved, self.len = view, {}, set(), len(view)  # type: ignore[assignment]

    def get(self, key: str) -> Any:
        """Return the current value of ``key``, ``None`` when absent."""
        value = self.over.get(key, MISSING)
        return self.base.get(key) if value is MISSING else value

    def set(self, key: str, value: Any) -> None:
        """Set (``value`` not None) or remove (``None``) ``key`` with dict semantics, order included."""
        present = self.get(key) is not None
        if value is None:
            if present:
                self.len -= 1
                if key in self.base:
                    self.over[key] = None
                else:
                    del self.over[key]
        elif present:
            self.over[key] = value
        else:
            self.len += 1
            self.over.pop(key, None)  # a re-added key goes to the end, as in a dict
            self.over[key] = value
            if key in self.base:
                self.moved.add(key)

    def view(self) -> Mapping[str, Any]:
        """Return the read-only mapping these changes describe (it shares the base)."""
        return Layered(self.base, self.over, self.moved, self.len)

    def materialize(self) -> dict[str, Any]:
        """Return the mapping as one fresh dict (a compaction)."""
        return dict(self.view().items())
