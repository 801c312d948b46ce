"""Templates to HTML responses: Jinja2 with autoescape, one inline style sheet, a strict policy.

The page's only style sheet is inline and nothing else is loaded, from here
or elsewhere: the Content-Security-Policy names the sheet by its hash and
allows no script, no frame, no form target but this service. If a record's
text ever escaped the templates' escaping, the browser would still run none
of it.
"""

from __future__ import annotations

import base64
import hashlib
from importlib.resources import files
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.responses import HTMLResponse

__all__ = ["render"]

_CSS = files("atdata_index_appview.web").joinpath("templates", "style.css").read_text(encoding="utf-8")
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode("utf-8")).digest()).decode("ascii")

HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src data:; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("atdata_index_appview.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# Our own style sheet, not a record's text: inside <style> entities are not decoded, so it goes in as it is.
_environment.globals["style_sheet"] = Markup(_CSS)
_environment.filters["thousands"] = lambda n: f"{n:,}" if isinstance(n, int) else n


def render(template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """``template`` rendered with ``context`` as an HTML response with the pages' security headers."""
    html = _environment.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)
