"""The jinja2 environment of the HTML reports: the templates shipped in backtests/templates/.

Autoescape is on, since plan ids and instrument names reach the page, and an undefined name in a
template fails the render instead of printing nothing.
"""

from __future__ import annotations

import jinja2

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("backtests", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
