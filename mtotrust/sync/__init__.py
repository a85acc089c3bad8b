"""``mtotrust.sync``: pull a tenant's directory from Microsoft Graph into the SQLite store, kept current by delta.

>>> from mtotrust.sync import EnvToken, sync
>>> report = sync("contoso.sqlite", tenant="...", tokens=EnvToken("GRAPH_TOKEN"))  # doctest: +SKIP
>>> report.to_dict()["users"]  # doctest: +SKIP

:func:`sync` is ``mtotrust sync`` without the command line; :func:`watch` lets a long-running add-in pick up each
new generation a sync commits (``engine.update``). The sync needs the ``sync`` extra (httpx, azure-identity:
``pip install 'mtotrust[sync]'``); :func:`watch` works on a plain install. See ``docs/sync.md``.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mtotrust._watch import StoreWatch, watch

if TYPE_CHECKING:
    from mtotrust.sync._client import AzureToken, EnvToken, TokenSource, token_source
    from mtotrust.sync._errors import GraphAccessError, GraphUnavailableError, SyncError, SyncUsageError
    from mtotrust.sync._run import SyncReport, sync

__all__ = ["AzureToken", "EnvToken", "GraphAccessError", "GraphUnavailableError", "StoreWatch", "SyncError",
           "SyncReport", "SyncUsageError", "TokenSource", "sync", "token_source", "watch"]

_LAZY = {"AzureToken": "_client", "EnvToken": "_client", "TokenSource": "_client", "token_source": "_client",
         "GraphAccessError": "_errors", "GraphUnavailableError": "_errors", "SyncError": "_errors",
         "SyncUsageError": "_errors", "SyncReport": "_run", "sync": "_run"}


def __getattr__(name: str) -> Any:
    """Import the parts that need httpx when first used, so ``watch`` works without the ``sync`` extra."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mtotrust.sync' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"mtotrust.sync.{module}"), name)
