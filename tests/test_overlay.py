"""The layered maps a delta is applied to behave exactly like a plain dict, iteration order included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mtotrust._overlay import Layered, Overlay

KEYS = st.sampled_from([f"k{i}" for i in range(8)])
OPERATIONS = st.lists(st.tuples(KEYS, st.none() | st.integers(0, 3)), max_size=30)


def apply(target: dict[str, int], key: str, value: int | None) -> None:
    """What Overlay.set means, on a dict: set, or delete when value is None."""
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


class TestOverlayIsADict:
    """An Overlay over a base dict, and the Layered views it makes, equal the dict the same operations make."""

    @given(base=st.dictionaries(KEYS, st.integers(0, 3)), steps=st.lists(OPERATIONS, max_size=4))
    def test_layers_of_changes_equal_a_dict(self, base, steps):
        """Any sequence of sets and removes, in layers (each delta on the last view), reads like a dict."""
        expected = dict(base)
        view: dict[str, int] | Layered = dict(base)
        frozen_base = dict(base)
        for operations in steps:
            overlay = Overlay(view)
            for key, value in operations:
                overlay.set(key, value)
                apply(expected, key, value)
            view = overlay.view()  # type: ignore[assignment]
            assert list(expected.items()) == list(view.items())
            assert len(expected) == len(view)
            for key in (f"k{i}" for i in range(8)):
                assert (key in expected, expected.get(key)) == (key in view, view.get(key))
            assert expected == overlay.materialize()
        assert frozen_base == base  # the shared base is never changed
