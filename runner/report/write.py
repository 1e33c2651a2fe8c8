"""`runner report`'s file: collect the build, render the page, write it (and its parts).

Secrets are scrubbed from everything written, and the parts go first: the page
that names them is written last, so it never points at a part not there yet.
"""

from __future__ import annotations

from pathlib import Path

from runner.manifest.load import load_pipeline
from runner.report.collect import collect, secrets_of
from runner.report.page import render_report
from runner.store import atomic
from runner.store.layout import Target, layout_for


def default_path(manifest: Path, *, sandbox: bool = False) -> Path:
    """Where `build_report` writes by default: `report.html` at the build's output root."""
    pipeline = load_pipeline(manifest)
    return layout_for(pipeline, Target.SANDBOX if sandbox else Target.LIVE).output_dir / \
        "report.html"


def build_report(manifest: Path, *, sandbox: bool = False, out: Path | None = None) -> Path:
    """Write the HTML report of a build; returns its path.

    `out` defaults to `<output_dir>/report.html` (`<output_dir>.sandbox/` with
    `sandbox`); an `out` not named `*.html` is a folder to write `report.html`
    into. Files are referenced relative to the report, so move the report and
    the outputs together.
    """
    build = collect(manifest, sandbox=sandbox)
    if out is None:
        out = build.layout.output_dir / "report.html"
    elif out.suffix.lower() not in (".html", ".htm"):
        out = out / "report.html"
    out = out.resolve()
    parts_dir = out.with_name(out.stem + ".parts")
    rendered = render_report(build, out.parent, parts_dir.name)
    secrets = secrets_of(build.pipeline)

    def scrub(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "[redacted]")
        return text

    # The parts first: the page that names them is written last, so it never points at
    # a part that is not there yet.
    names = set()
    for number, text in enumerate(rendered.parts, start=1):  # part 0 is in the page
        name = part_name(number)
        atomic.write_text(parts_dir / name, scrub(text))
        names.add(name)
    if parts_dir.is_dir():  # parts of an earlier, longer report
        for stale in parts_dir.glob("*.js"):
            if stale.name not in names:
                stale.unlink(missing_ok=True)
    atomic.write_text(out, scrub(rendered.page))
    return out


def part_name(number: int) -> str:
    return f"{number:04d}.js"
