"""The farm's pages and badges from the Jinja2 templates in templates/.

Autoescape is on for every template, HTML and SVG alike, so a value a build, a
registry entry or a workers file reports is escaped wherever a page shows it; the
templates never mark a value safe.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from .status_colours import COLOURS, colour, css_class, label

# Characters XML 1.0 does not allow at all (escaping cannot save them): a badge with
# one would not parse.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


ENV = Environment(
    loader=PackageLoader("wheelfarm.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,  # a misspelt name fails the test, not the page
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(colour=colour, css_class=css_class, label=label, xml_text=xml_text)
ENV.globals.update(COLOURS=COLOURS)


def render(template: str, **context: Any) -> bytes:
    return ENV.get_template(template).render(**context).encode()
