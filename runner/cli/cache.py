"""The command line of the team's remote cache: `runner cache push|pull|gc` and
`runner run --remote-cache-mode`.

Kept apart from runner/cli/main.py (as runner/cli/report.py is): building the
`runner` parser imports nothing but argparse; the S3 client loads only when a
`cache` command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from runner.cli.exitcodes import ExitCode

_URL_HELP = ("the remote cache, s3://BUCKET/PREFIX (default: RUNNER_REMOTE_CACHE, then the "
             "manifest's remote_cache:)")


def add_run_option(run: argparse.ArgumentParser) -> None:
    """Add `--remote-cache-mode` to `runner run`."""
    run.add_argument("--remote-cache-mode", choices=("read", "readwrite", "off"), default=None,
                     help="use the team's remote cache (RUNNER_REMOTE_CACHE or remote_cache:) "
                          "to restore results (read) and also record this machine's (readwrite,"
                          " the default when one is configured), or not at all (off); "
                          "default: RUNNER_REMOTE_CACHE_MODE")


def configure(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `runner cache` to the `runner` subcommands."""
    cache = commands.add_parser(
        "cache", help="share results through the team's remote cache (S3)",
        description="Push a build's takes to the team's remote cache, pull a lockfile's takes "
                    "from it (no provider key needed), or collect its garbage. Credentials "
                    "and server: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, "
                    "AWS_REGION.")
    actions = cache.add_subparsers(dest="cache_command", metavar="SUBCOMMAND")
    actions.required = True
    for name, verb, handler in (
        ("push", "upload every take the lockfile pins that the local cache holds", cmd_push),
        ("pull", "fetch every take the lockfile pins whose output is missing, and write it",
         cmd_pull),
    ):
        action = actions.add_parser(name, help=verb, description=verb[0].upper() + verb[1:]
                                    + ". Nothing is bought.")
        action.add_argument("file", metavar="FILE", type=Path)
        action.add_argument("--sandbox", action="store_true",
                            help="the sandbox build (<output_dir>.sandbox) instead of the live one")
        action.add_argument("--remote-cache", metavar="URL", default=None, help=_URL_HELP)
        action.set_defaults(handler=handler)
    gc = actions.add_parser(
        "gc", help="delete takes no committed lockfile pins, past a grace period",
        description="Mark every take the given lockfiles pin (and every take a kept record "
                    "names), then delete records and bytes that nothing marked and that are "
                    "older than the grace period. Age alone never deletes a take.")
    gc.add_argument("--keep-lockfiles", nargs="+", required=True, type=Path, metavar="LOCK",
                    help="the lockfiles whose takes are kept (e.g. every branch's "
                         "*.lock.json)")
    gc.add_argument("--grace-days", type=float, default=None, metavar="DAYS",
                    help="keep anything younger than this, referenced or not (default 7)")
    gc.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    gc.add_argument("--remote-cache", metavar="URL", default=None,
                    help="the remote cache, s3://BUCKET/PREFIX (default: RUNNER_REMOTE_CACHE)")
    gc.set_defaults(handler=cmd_gc)


def _size(n_bytes: int) -> str:
    if n_bytes < 1000:
        return f"{n_bytes} B"
    value = float(n_bytes)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _sync(args: argparse.Namespace, verb: str) -> int:
    from runner.catalog.environment import environment
    from runner.engine.loop import run_loop
    from runner.team import sync

    env = environment(args.file)
    action = sync.push if verb == "pushed" else sync.pull
    report = run_loop(action(args.file, sandbox=args.sandbox, env=env, url=args.remote_cache),
                      env)
    for job_id, problem in report.problems:
        print(f"{job_id}: {problem}", file=sys.stderr)
    where = "to" if verb == "pushed" else "from"
    line = (f"{verb} {report.moved} take(s) {where} {report.remote}: "
            f"{_size(report.bytes_moved)} in {report.elapsed_s:.1f} s, {report.requests} "
            f"request(s); {report.present} already there")
    if report.differ:
        line += (f"; {len(report.differ)} recorded differently by the team (its first take "
                 "stays; these bytes were uploaded too)")
    if report.problems:
        line += f"; {len(report.problems)} problem(s)"
    print(line)
    if verb == "pulled":
        print(f"outputs in {os.path.relpath(report.layout.output_dir)}")
    return int(ExitCode.JOBS_FAILED if report.problems else ExitCode.OK)


def cmd_push(args: argparse.Namespace) -> int:
    return _sync(args, "pushed")


def cmd_pull(args: argparse.Namespace) -> int:
    return _sync(args, "pulled")


def cmd_gc(args: argparse.Namespace) -> int:
    from runner.engine.loop import run_loop
    from runner.errors import UsageError
    from runner.team import gc
    from runner.team.config import resolve
    from runner.team.objects import Bucket

    env = dict(os.environ)
    config = resolve(None, env, url=args.remote_cache)
    if config is None:
        raise UsageError("no remote cache: set RUNNER_REMOTE_CACHE=s3://BUCKET/PREFIX or "
                         "give --remote-cache URL")
    grace = gc.DEFAULT_GRACE_DAYS if args.grace_days is None else args.grace_days
    if grace < 0:
        raise UsageError(f"--grace-days must not be negative, not {grace:g}")
    report = run_loop(gc.collect(Bucket(config), args.keep_lockfiles, grace_days=grace,
                                 dry_run=args.dry_run), env)
    verb = "would delete" if args.dry_run else "deleted"
    for listed in (*report.deleted_records, *report.deleted_blobs):
        print(f"{verb} {listed.path} ({_size(listed.size)})")
    print(f"{config.url}: {report.records} record(s), {report.blobs} blob(s); kept what "
          f"{report.lockfiles} lockfile(s) pin ({report.marked_keys} request(s), "
          f"{report.marked_digests} take(s)) and {report.young} unreferenced object(s) younger "
          f"than {grace:g} day(s); {verb} {len(report.deleted_records)} record(s) and "
          f"{len(report.deleted_blobs)} blob(s), {_size(report.freed_bytes)}, in "
          f"{report.elapsed_s:.1f} s ({report.requests} requests)")
    return int(ExitCode.OK)
