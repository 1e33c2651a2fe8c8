"""The command line of review and export: `runner review FILE`, `runner export FILE`.

Kept apart from runner/cli/main.py (as runner/cli/report.py is): building the `runner`
parser imports nothing heavier than argparse; aiohttp and the review modules
load only when a review starts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runner.cli.exitcodes import ExitCode
from runner.errors import UsageError


def configure(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `runner review` and `runner export` to the `runner` subcommands."""
    review = commands.add_parser(
        "review", help="audition a build in the browser: approve, reject, pick takes",
        description="Serve a local web app (127.0.0.1 only, a random token in its URL) to "
                    "listen through a build: takes side by side, waveforms, loudness, "
                    "keyboard first. Decisions go to <name>.review.jsonl beside the lockfile "
                    "at once: an approved take is frozen, a rejected one is remade by the "
                    "next `runner run`, a picked take is what `runner export` copies.",
    )
    review.add_argument("file", metavar="FILE", type=Path)
    review.add_argument("--sandbox", action="store_true",
                        help="review the sandbox build (<output_dir>.sandbox)")
    review.add_argument("--port", type=int, default=0, metavar="N",
                        help="port on 127.0.0.1 (default: any free port)")
    review.add_argument("--open", action="store_true",
                        help="open the page in the default browser")
    review.add_argument("--reviewer", metavar="NAME", default=None,
                        help="name recorded with each decision (default: $RUNNER_REVIEWER or "
                             "the login name)")
    review.set_defaults(handler=cmd_review)

    export = commands.add_parser(
        "export", help="copy each job's chosen take to its fixed path",
        description="Copy the picked (or the one approved) take of every job to the path its "
                    "`approved:` template names (default approved/{id}.{ext}), inside "
                    "output_dir or --to DIR. Files it wrote before that no job chooses any "
                    "more are removed, unless they were changed since.",
    )
    export.add_argument("file", metavar="FILE", type=Path)
    export.add_argument("--sandbox", action="store_true", help="the sandbox build")
    export.add_argument("--to", type=Path, default=None, metavar="DIR",
                        help="write under DIR instead of output_dir")
    export.add_argument("--dry-run", action="store_true", help="say what would change")
    export.set_defaults(handler=cmd_export)


def _check_build(file: Path, sandbox: bool, what: str) -> None:
    """As `runner report` does: a build never run, or the live build when only a
    sandbox one exists, is said in one line instead of an empty app or export."""
    from runner.manifest.load import load_pipeline
    from runner.store.layout import has_build, layout_to_read

    layout, note = layout_to_read(load_pipeline(file), sandbox)
    if note is None and not has_build(layout):
        note = (f"nothing to {what}: the {layout.target.value} build of {file} has never "
                "run (runner run FILE" + (" --sandbox" if sandbox else "") + ")")
    if note is not None:
        raise UsageError(note)


def cmd_review(args: argparse.Namespace) -> int:
    # asyncio and webbrowser here, not at the top: every command imports this module to
    # build the parser, and asyncio was a third of `runner validate`'s start-up.
    import asyncio
    import webbrowser

    from runner.report.review_app import ReviewApp, serve
    from runner.report.review_session import ReviewSession

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: expected 0 (any free port) to 65535")
    _check_build(args.file, args.sandbox, "review")
    session = ReviewSession(args.file, sandbox=args.sandbox, reviewer=args.reviewer)
    app = ReviewApp(session)

    def ready(url: str) -> None:
        print(f"review: {url}", flush=True)
        print(f"decisions go to {session.review_file}; Ctrl-C stops", flush=True)
        if args.open:
            webbrowser.open(url)

    try:
        asyncio.run(serve(app, port=args.port, ready=ready))
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from exc
    except KeyboardInterrupt:
        print("review: stopped", file=sys.stderr)
    return int(ExitCode.OK)


def cmd_export(args: argparse.Namespace) -> int:
    from runner.plan.export import export, relative

    _check_build(args.file, args.sandbox, "export")
    report = export(args.file, sandbox=args.sandbox, to=args.to, dry_run=args.dry_run)
    verb = "would write" if args.dry_run else "wrote"
    for job_id, path in report.written:
        print(f"{verb} {relative(path)} ({job_id})")
    for path in report.removed:
        print(f"{'would remove' if args.dry_run else 'removed'} {relative(path)} (no longer "
              "chosen)")
    for path in report.kept:
        print(f"left alone: {relative(path)} was changed since export wrote it (or export "
              "did not write it); remove it to export there")
    for choice in report.without:
        print(f"not exported: {choice.base_id} ({choice.reason})")
    print(f"{len(report.written)} {'to write' if args.dry_run else 'written'}, "
          f"{len(report.unchanged)} unchanged, {len(report.without)} without a chosen take")
    return int(ExitCode.OK)
