"""The one page that draws driftline's state: the worker's live view and the replay report.

Why here: the live page (``streams``) and the replay report (``replay``) must render the same
way, and neither package may import the other. The page is an output format like the alert:
a document (the JSON the detectors' views produce, see ``driftline.detectors.Monitor.
page_view``) and its renderer, ``page.html``, which ships as package data next to the JSON
Schemas. It is one self-contained file, inline CSS and JavaScript with hand-written SVG
charts (about 20 KB, no library: a charting library would be larger than the page and these
are three chart types), and it fetches nothing but its own worker's JSON.

- Live (``page_html()``): the page polls ``page/data.json`` and ``page/feature.json`` relative
  to where it is served, every 2 s.
- Report (``page_html(document)``): the document is embedded as JSON in the file and the same
  code renders it, with no network at all.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import orjson

__all__ = ["page_html"]

_SLOT = b"<!--DRIFTLINE_DATA-->"


@cache
def _template() -> bytes:
    return files("driftline.schemas").joinpath("page.html").read_bytes()


def page_html(document: dict[str, Any] | None = None) -> bytes:
    """The page, live (no ``document``: it polls its worker) or with ``document`` embedded.

    The embedded JSON escapes ``<`` (as ``\\u003c``, valid only inside JSON strings, where
    it can be), so no value (a feature name, an alert message) can close the script element.
    """
    page = _template()
    if document is None:
        return page
    data = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY).replace(b"<", b"\\u003c")
    script = b'<script id="driftline-data" type="application/json">' + data + b"</script>"
    return page.replace(_SLOT, script, 1)
