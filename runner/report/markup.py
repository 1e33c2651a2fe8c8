"""The pages' templates (runner/report/templates/, shipped in the wheel), rendered by
Jinja2 with autoescape, and the cards' fragments (`html`): a value reaches a page
escaped unless it is markupsafe `Markup`, which only code that built it safely
makes (fragments made by `html`, the pages' own style and script, JSON made safe
for a `<script>` element)."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("runner.report", "templates"),
        autoescape=True,  # every template here is HTML
        undefined=StrictUndefined,  # a misspelt value is an error, not an empty string
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )


def html(template: str, *values: object) -> Markup:
    """`template`, markup written in the code with a `{}` per value, with every value
    escaped unless it is Markup already: what `Markup(template).format(*values)` does,
    without its formatter written in Python, which made a 10,000-asset report three
    times slower to render (so no format specs: numbers come formatted). `template`
    is always a literal, never text from a manifest, a provider or a person."""
    return Markup(template.format(*map(escape, values)))


def render_template(name: str, **values: Any) -> str:
    return environment().get_template(name).render(**values)
