"""The optional features' third-party packages, imported when a feature is used.

A plain install carries what the demo, backtests and paper or live sessions need. A sweep on a
Dask cluster, a PostgreSQL journal and Prometheus metrics each need a package of their own,
declared as an extra in pyproject.toml; a feature used without it stops with the command that
installs it, before anything is sent anywhere.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(RuntimeError):
    """An optional feature was asked for without the package it runs on."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """`module`, imported; or MissingExtraError naming the feature and the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the '{extra}' extra ({exc.name or module} is not installed): "
            f"pip install 'fa-rebalance[{extra}]' (in this repository: uv sync --extra {extra})"
        ) from None
