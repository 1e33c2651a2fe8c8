"""The `runner` command: parse arguments, build objects, call one function.

Commands stay thin; heavy modules are imported inside the handlers so that
`runner validate` of a large manifest does not pay for httpx, pydub or the
sandbox at start-up.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from runner import __version__
from runner.cli.exitcodes import ExitCode, exit_code_for
from runner.errors import ManifestInvalid, RunnerError

Handler = Callable[[argparse.Namespace], int]


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runner",
        description="Declarative batch runner for AI audio generation and transcription APIs.",
    )
    parser.add_argument("--version", action="version", version=f"runner {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    validate = commands.add_parser(
        "validate", help="check manifests; report every problem with file:line",
        description="Check manifests against the pipeline and model schemas without any "
                    "network access. Exit 0 when all are valid, 2 otherwise.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", type=Path)
    validate.set_defaults(handler=cmd_validate)

    plan = commands.add_parser(
        "plan", help="show what a run would do: jobs, states, cache keys, cost",
        description="List the expanded jobs with their state against the lockfile "
                    "(new / changed / up to date / frozen) and the estimated cost.",
    )
    plan.add_argument("file", metavar="FILE", type=Path)
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument("--sandbox", action="store_true",
                      help="plan the sandbox build (<output_dir>.sandbox) instead of the live one")
    plan.add_argument("--force", nargs="+", default=[], metavar="ID",
                      help="show these jobs as forced")
    plan.add_argument("--recontext", action="store_true",
                      help="count a change of a narration segment's neighbours as a change")
    plan.set_defaults(handler=cmd_plan)

    run = commands.add_parser(
        "run", help="generate every asset that is new or changed",
        description="Validate, plan and run a manifest: submit what is new or changed, "
                    "within each account's limits, and record everything in the lockfile.",
    )
    run.add_argument("file", metavar="FILE", type=Path)
    where = run.add_mutually_exclusive_group()
    where.add_argument("--sandbox", action="store_true",
                       help="start the embedded sandbox and run against it (no key, no cost)")
    where.add_argument("--sandbox-url", metavar="URL",
                       help="run against a sandbox that is already running")
    run.add_argument("--only", nargs="+", default=[], metavar="ID",
                     help="run only these jobs (and what they depend on)")
    run.add_argument("--force", nargs="+", default=[], metavar="ID",
                     help="regenerate these jobs even if they are up to date")
    run.add_argument("--restore", nargs="+", default=[], metavar="ID",
                     help="put back the generated take of these jobs over their hand-edited "
                          "outputs (which a run otherwise keeps)")
    run.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                     help="at most N jobs in progress at once (default: the accounts' limits)")
    going = run.add_mutually_exclusive_group()
    going.add_argument("--keep-going", dest="fail_fast", action="store_false",
                       help="a failed job does not stop the others (default)")
    going.add_argument("--fail-fast", dest="fail_fast", action="store_true",
                       help="stop submitting after the first failed job")
    # Both flags share one setting; without this, argparse would take the first flag's
    # implied default (store_false: True), making fail-fast the real default.
    run.set_defaults(fail_fast=False)
    run.add_argument("--recontext", action="store_true",
                     help="also regenerate narration segments whose neighbours' text changed "
                          "(default: only segments whose own text changed)")
    run.add_argument("--locked", action="store_true",
                     help="generate nothing: exit 2 listing what would be generated")
    run.add_argument("--max-credits", type=float, default=None, metavar="N",
                     help="stop submitting before the estimated spend would exceed N credits")
    run.add_argument("--resubmit-uncertain", nargs="+", default=[], metavar="ID",
                     help="send again requests whose answer was lost (may pay twice; '*' = all)")
    run.add_argument("--adopt-task", nargs="+", default=[], metavar="ID=TASK",
                     help="collect this task (found in the provider's log) for a job whose "
                          "request went unanswered, instead of sending it again")
    run.add_argument("--callback-url", metavar="PUBLIC_URL",
                     help="receive provider callbacks at this public URL (forwarded to "
                          "--callback-listen)")
    run.add_argument("--callback-listen", metavar="HOST:PORT",
                     help="where the local callback receiver listens (default 127.0.0.1:0)")
    run.add_argument("--no-wait", dest="wait", action="store_false",
                     help="if another process is running this build, exit at once (exit 4) "
                          "instead of waiting for it")
    run.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                     help="after Ctrl-C, keep collecting tasks in flight this long")
    shown = run.add_argument_group("progress output (on stderr; the summary goes to stdout)")
    shown.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="a live table per provider account (default: when stderr is a "
                            "terminal); --no-progress: one plain line per event instead")
    shown.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="json: one JSON object per event, for CI (default: text)")
    loudness = shown.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                          default=0, help="print only failures and the summary")
    loudness.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                          help="also print each job's steps (queued, polls, uploads, stored)")
    run.set_defaults(handler=cmd_run)
    from runner.cli.report import add_run_option
    from runner.cli.report import configure as configure_report

    add_run_option(run)  # runner run --report
    configure_report(commands)  # runner report FILE [--sandbox] [--out PATH]
    from runner.cli import cache as cache_cli
    from runner.cli import claims as claims_cli

    cache_cli.add_run_option(run)  # runner run --remote-cache-mode
    claims_cli.add_run_option(run)  # runner run --budget NAME[=CAP]
    cache_cli.configure(commands)  # runner cache push|pull|gc
    from runner.cli.review import configure as configure_review

    configure_review(commands)  # runner review FILE, runner export FILE

    status = commands.add_parser(
        "status", help="what the build holds: done, failed, in flight, cached, modified",
        description="Each job's state from the journal and the lockfile; with "
                    "RUNNER_COORDINATOR, also what other machines hold for it (claims, by "
                    "whom, since when). No provider is asked.",
    )
    status.add_argument("file", metavar="FILE", type=Path)
    status.add_argument("--sandbox", action="store_true", help="the sandbox build")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    clean = commands.add_parser(
        "clean", help="remove outputs no job refers to any more (paid takes are kept)",
        description="Remove output files the runner wrote for jobs no longer in the manifest, "
                    "and cache entries of superseded takes. Files the runner did not write "
                    "are never touched.",
    )
    clean.add_argument("file", metavar="FILE", type=Path)
    clean.add_argument("--sandbox", action="store_true", help="the sandbox build")
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed")
    clean.add_argument("--prune-takes", action="store_true",
                       help="also remove paid takes that only the cache holds (superseded "
                            "takes, takes of removed jobs): going back to them would pay again")
    clean.set_defaults(handler=cmd_clean)

    schemas = commands.add_parser("schemas", help="derive and export JSON Schemas")
    schema_commands = schemas.add_subparsers(dest="schemas_command", metavar="SUBCOMMAND")
    schema_commands.required = True
    build = schema_commands.add_parser(
        "build", help="derive schemas/models/*.json and schemas/pipeline.schema.json",
        description="Derive one JSON Schema per model input from schemas/openapi/ and the "
                    "manifest schema, into the checked-in schemas/ folder.",
    )
    build.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 if the checked-in files are stale")
    build.set_defaults(handler=cmd_schemas_build)
    export = schema_commands.add_parser(
        "export", help="write the manifest schema for editor integration",
        description="Write pipeline.schema.json (self-contained, with every model's input "
                    "schema) into DIR.",
    )
    export.add_argument("dir", metavar="DIR", type=Path)
    export.set_defaults(handler=cmd_schemas_export)

    init = commands.add_parser(
        "init", help="write a commented starter manifest",
        description="Write a starter manifest (three kinds of job, commented) and, beside "
                    "it, pipeline.schema.json, which its first line names so that editors "
                    "complete and check it.",
    )
    init.add_argument("file", metavar="FILE", type=Path, nargs="?",
                      default=Path("pipeline.yaml"), help="default: pipeline.yaml")
    init.add_argument("--force", action="store_true", help="replace an existing FILE")
    init.set_defaults(handler=cmd_init)

    completion = commands.add_parser(
        "completion", help="print a shell completion script",
        description="Print the completion script of a shell. bash: eval \"$(runner "
                    "completion bash)\" in ~/.bashrc; zsh: the same with zsh in ~/.zshrc; "
                    "fish: runner completion fish > ~/.config/fish/completions/runner.fish",
    )
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))
    completion.set_defaults(handler=cmd_completion)

    sandbox = commands.add_parser(
        "sandbox", help="a local emulator of every provider API", description=(
            "A faithful local emulator of the kie.ai/apikley market API, AI/ML API "
            "and ElevenLabs, for offline runs and tests."
        )
    )
    if argv[:1] == ["sandbox"] or argv[:1] == ["completion"]:
        # Only `runner sandbox ...` pays for importing the sandbox package.
        from runner.sandbox import cli as sandbox_cli

        sandbox_cli.configure(sandbox, handler=cmd_sandbox_serve)
    return parser


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from runner.sandbox import cli as sandbox_cli

    sandbox_cli.run_serve(args)
    return int(ExitCode.OK)


def cmd_init(args: argparse.Namespace) -> int:
    from runner.cli.starter import write_starter

    written = write_starter(args.file, force=args.force)
    for path in written:
        print(f"wrote {os.path.relpath(path)}")
    print(f"next: runner validate {os.path.relpath(written[0])}, then runner run "
          f"{os.path.relpath(written[0])} --sandbox")
    return int(ExitCode.OK)


def cmd_completion(args: argparse.Namespace) -> int:
    from runner.cli.starter import completion_script

    print(completion_script(args.shell, build_parser(["completion"])), end="")
    return int(ExitCode.OK)


def cmd_validate(args: argparse.Namespace) -> int:
    from runner.errors import ManifestInvalid
    from runner.manifest.load import load_pipeline, without_cycle_collection

    problems = 0
    # Each pipeline is freed before the cycle collector runs again, which would otherwise
    # walk a large manifest's millions of containers once more to find nothing.
    with without_cycle_collection():
        for path in args.files:
            try:
                jobs = len(load_pipeline(path).jobs)
            except ManifestInvalid as exc:
                for problem in exc.problems:
                    print(problem)
                problems += len(exc.problems)
                continue
            print(f"{path}: ok ({jobs} jobs)")
    if problems:
        print(f"{problems} problem{'s' if problems != 1 else ''} found")
        return int(ExitCode.INVALID)
    return int(ExitCode.OK)


def cmd_plan(args: argparse.Namespace) -> int:
    import json

    from runner.cli.plan_view import plan_json, render_plan
    from runner.plan.housekeeping import read_plan

    # A plan of a live build never run is useful (what would it cost?): shown, with
    # a word when a sandbox build exists and was probably meant.
    plan, note = read_plan(args.file, args.sandbox, strict=False, force=args.force,
                           recontext=args.recontext)
    if args.json:
        print(json.dumps(plan_json(plan), indent=2))
    else:
        print(render_plan(plan))
    if note is not None:
        print(f"runner: note: {note}", file=sys.stderr)
    return int(ExitCode.OK)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    from runner.errors import UsageError

    pairs = {}
    for value in values:
        name, sep, task = value.partition("=")
        if not sep or not name or not task:
            raise UsageError(f"{option} takes ID=TASK, not {value!r}")
        pairs[name] = task
    return pairs


def _say_waiting(message: str) -> None:
    print(f"runner: {message}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from runner.cli.run import RunOptions, print_summary, run_pipeline
    from runner.progress.display import cli_observers

    observers, close_progress = cli_observers(log_format=args.log_format,
                                              progress=args.progress, verbosity=args.verbosity)
    options = RunOptions(
        sandbox=args.sandbox, sandbox_url=args.sandbox_url, only=args.only, force=args.force,
        restore=args.restore,
        fail_fast=args.fail_fast, max_active_jobs=args.jobs, locked=args.locked,
        max_credits=args.max_credits, resubmit_uncertain=args.resubmit_uncertain,
        adopt=_pairs(args.adopt_task, "--adopt-task"),
        callback_url=args.callback_url, callback_listen=args.callback_listen,
        grace_s=args.grace, observers=observers, recontext=args.recontext,
        wait_for_lock=args.wait, on_lock_wait=_say_waiting,
        remote_cache_mode=args.remote_cache_mode, budget=args.budget,
    )
    try:
        code, plan, result, tally = run_pipeline(args.file, options)
    finally:
        close_progress()  # the live table's last frame, and the cursor back, before the summary
    try:
        print_summary(plan, result, tally, args.file, options)
        if args.report:
            from runner.cli.report import report_after_run

            report_after_run(args.file, sandbox=options.sandbox or options.sandbox_url is not None)
        sys.stdout.flush()
    except BrokenPipeError:  # `runner run | head -3`: the run is recorded; its code stands
        _silence_stdout()
    return code


def cmd_status(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from runner.catalog.environment import environment
    from runner.cli import claims as claims_cli
    from runner.plan.housekeeping import build_status, render_status
    from runner.store.layout import describe

    statuses, layout = build_status(args.file, sandbox=args.sandbox)
    # What other machines hold for this build, when the team's ledger is configured.
    team = claims_cli.team_status(args.file, sandbox=args.sandbox,
                                  env=environment(args.file))
    if args.json:
        rows = [dataclasses.asdict(s) for s in statuses]
        if team is not None:
            claims = claims_cli.claims_json(team)
            rows = [{**row, "claim": claims.get(row["job_id"])} for row in rows]
        print(json.dumps(rows, indent=2))
    else:
        print(describe(layout))
        print(render_status(statuses))
        if team is not None:
            print(claims_cli.render_team_status(team))
    return int(ExitCode.OK)


def cmd_clean(args: argparse.Namespace) -> int:
    from runner.plan.housekeeping import clean

    report = clean(args.file, sandbox=args.sandbox, dry_run=args.dry_run,
                   prune_takes=args.prune_takes)
    verb = "would remove" if args.dry_run else "removed"
    for where in [*map(str, report.outputs), *report.blobs]:
        print(f"{verb} {os.path.relpath(where)}")
    print(f"{verb} {len(report.outputs)} output(s) and {len(report.blobs)} cached file(s), "
          f"{_size(report.freed_bytes)}")
    if report.kept_takes:
        print(f"kept {report.kept_takes} paid take(s) that only the cache holds "
              f"({_size(report.kept_bytes)}: superseded, or of jobs no longer in the "
              "manifest); --prune-takes removes them")
    return int(ExitCode.OK)


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"


def cmd_schemas_build(args: argparse.Namespace) -> int:
    from runner.schemas.build import build_all, stale_files

    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"stale: {name}")
        if stale:
            print("run `runner schemas build` and commit the result")
            return int(ExitCode.JOBS_FAILED)
        print("schemas are up to date")
        return int(ExitCode.OK)
    for path in build_all():
        print(f"wrote {path}")
    return int(ExitCode.OK)


def cmd_schemas_export(args: argparse.Namespace) -> int:
    from runner.schemas.build import export_pipeline_schema

    print(f"wrote {export_pipeline_schema(args.dir)}")
    return int(ExitCode.OK)


def _silence_stdout() -> None:
    """Point stdout at /dev/null: Python's flush at exit would fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # a reader gone shows here, not as a traceback at exit
        return code
    except BrokenPipeError:
        # `runner status | head`: the reader has what it wanted.
        _silence_stdout()
        return int(ExitCode.BROKEN_PIPE)
    except ManifestInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return int(exit_code_for(exc))
    except RunnerError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return int(exit_code_for(exc))
    except KeyboardInterrupt:
        print("runner: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    raise SystemExit(main())
