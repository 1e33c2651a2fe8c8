"""The command line of the report: `runner report FILE` and `runner run --report`.

Kept apart from runner/report/collect.py so that building the `runner` parser imports
nothing heavier than argparse: the report's modules load only when it is made.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runner.cli.exitcodes import ExitCode
from runner.errors import RunnerError


def configure(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `runner report` to the `runner` subcommands."""
    report = commands.add_parser(
        "report", help="write an HTML page to listen to and check a build",
        description="Write a self-contained HTML report of a build: every asset with a "
                    "player and a waveform, variants side by side, narrations with their "
                    "segments and subtitles, transcripts, and failed jobs with their reason. "
                    "It references the outputs by relative path and loads nothing else, so "
                    "it opens from file:// and travels with the output folder.",
    )
    report.add_argument("file", metavar="FILE", type=Path)
    report.add_argument("--sandbox", action="store_true",
                        help="report the sandbox build (<output_dir>.sandbox) instead of the "
                             "live one")
    report.add_argument("--out", type=Path, default=None, metavar="PATH",
                        help="where to write: a .html file, or a folder for report.html "
                             "(default: <output_dir>/report.html)")
    report.set_defaults(handler=cmd_report)


def add_run_option(run: argparse.ArgumentParser) -> None:
    """Add `--report` to `runner run`."""
    run.add_argument("--report", action="store_true",
                     help="after the run, write <output_dir>/report.html (as `runner report`)")


def cmd_report(args: argparse.Namespace) -> int:
    from runner.errors import UsageError
    from runner.manifest.load import load_pipeline
    from runner.report.write import build_report
    from runner.store.layout import has_build, layout_to_read

    layout, note = layout_to_read(load_pipeline(args.file), args.sandbox)
    if note is None and not has_build(layout):
        note = (f"nothing to report: the {layout.target.value} build of {args.file} has never "
                "run (runner run FILE" + (" --sandbox" if args.sandbox else "") + ")")
    if note is not None:  # an empty page, or the wrong build, helps nobody
        raise UsageError(note)
    path = build_report(args.file, sandbox=args.sandbox, out=args.out)
    print(f"wrote {path}")
    return int(ExitCode.OK)


def report_after_run(manifest: Path, *, sandbox: bool) -> None:
    """`runner run --report`: write the report whatever the run's outcome (a failed run's
    report is the useful one); a report that cannot be written is said on stderr and
    leaves the run's exit code alone."""
    from runner.report.write import build_report

    try:
        print(f"report: {build_report(manifest, sandbox=sandbox)}")
    except RunnerError as exc:
        print(f"runner: the report was not written: {exc}", file=sys.stderr)
