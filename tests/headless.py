"""Headless Chromium for the tests that check a report as a browser draws it.

Chromium is Debian's; a missing browser (or Playwright) skips those tests locally but fails them
under CI, which installs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# A closed network and root: no sandbox, and nothing that would try to reach the outside.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1200, "height": 900}

# Everything the checks need from the rendered page, read in one round trip. matplotlib wraps each
# artist in a <g>; the report tags the ones that mean something (see backtests/sweep_report.py), and
# a tagged group's colour is that of the shape it draws: a marker (<use>) by its fill, a line by its
# stroke. Text is drawn as glyph outlines in a <g id="text_N"> that names its string in a comment.
PAGE_JS = """
const box = e => { if (!e) return null; const r = e.getBoundingClientRect();
                   return [r.left, r.top, r.right, r.bottom]; };
const shape = g => g && [...g.querySelectorAll('use, path')].find(e => !e.closest('defs'));
const paint = g => { const e = shape(g); if (!e) return null; const s = getComputedStyle(e);
                     return e.tagName === 'use' ? s.fill : s.stroke; };
const said = g => [...g.childNodes].filter(n => n.nodeType === Node.COMMENT_NODE)
                                    .map(n => n.textContent.trim()).join(' ');
const ticks = (scope, axis) => [...scope.querySelectorAll(`g[id^="${axis}tick_"] g[id^="text_"]`)].map(said);
"""


def browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (Debian package chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (dev dependency group)"
    return None


def require_chromium() -> Path:
    """The browser's path; skips the test (fails it under CI) when there is none."""
    missing = browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must render the report: {missing}")
        pytest.skip(missing)
    return CHROMIUM


def inside(inner, outer, slack: float = 0.5) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[2] <= outer[2] + slack
        and inner[3] <= outer[3] + slack
    )
