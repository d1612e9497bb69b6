"""The report page: one HTML file with its CSS, JavaScript and data inline.

Nothing is fetched when the page opens: styles and script are inlined from the
package's ``page.css`` and ``page.js``, thumbnails are ``data:image/png;base64`` PNGs
inside a JSON document (``<script type="application/json">``), and the page composes
the channels itself, so channel toggles and colours need no server.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from typing import Any

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<style>{css}</style>
</head>
<body data-ready="0">
<header><h1>{title}</h1><p>{subtitle}</p></header>
<div class="controls">
  <div id="channels"></div>
  <label>Show <select id="heatmap"></select></label>
  <label>Sort cells by <select id="sort"></select></label>
  <select id="order">
    <option value="desc">descending</option><option value="asc">ascending</option>
  </select>
</div>
<div id="legend"></div>
<div id="plate"></div>
<section id="detail"><p>Click a well to see its fields and cells.</p></section>
<footer>{footer}</footer>
<script type="application/json" id="report-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""


def _asset(name: str) -> str:
    return files("iceberg_bioimage.report").joinpath(name).read_text(encoding="utf-8")


def _json(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element early."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(data: dict[str, Any], *, title: str, subtitle: str, footer: str) -> str:
    """The whole page as one string."""
    return _TEMPLATE.format(
        csp=_CSP,
        title=html.escape(title),
        subtitle=html.escape(subtitle),
        footer=html.escape(footer),
        css=_asset("page.css"),
        js=_asset("page.js"),
        data=_json(data),
    )
