"""`runner sandbox serve`: the sandbox as a standalone server.

Standard library only at module level: every `runner` command imports this to
build its parser. Starlette and uvicorn are imported by the handler.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable

from runner.sandbox.config import (
    ELEVENLABS_PLANS,
    FAULT_KINDS,
    REALISTIC_LATENCY,
    REALISTIC_RATE_LIMIT,
    KnobError,
    SandboxConfig,
    parse_faults,
    parse_latency,
    parse_rate_limit,
)
from runner.sandbox.quirks import QUIRKS, QuirkError, parse_quirks


def configure(parser: argparse.ArgumentParser,
              handler: Callable[[argparse.Namespace], int]) -> None:
    """The `runner sandbox` subcommands. `handler` is the CLI's own for `serve`: it calls
    `run_serve`, and the exit code stays the CLI's to pick (runner.cli.exitcodes)."""
    commands = parser.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND")
    commands.required = True
    serve = commands.add_parser(
        "serve", help="serve the emulator on a loopback port until interrupted",
        description="Serve every emulated provider API; prints the base URL, then the URL of "
                    "kie's upload host, one per line. Defaults: every documented quirk on (the "
                    "faithful mode), tasks done at once (latency 0), no rate limit, no credit "
                    "limit, ElevenLabs concurrency of the Creator plan. --realistic adds the "
                    "published rate limits and realistic latencies (what `runner run --sandbox` "
                    "uses).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fault kinds:\n" + "\n".join(f"  {k:<14} {v}" for k, v in FAULT_KINDS.items())
        + "\n\nquirks (the faithful default rate in brackets):\n"
        + "\n".join(f"  {q.name:<26} [{q.faithful:g}] {q.effect}" for q in QUIRKS.values()),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765,
                       help="port of the APIs (default 8765); 0 picks a free one")
    serve.add_argument("--upload-port", type=int, default=None, metavar="PORT",
                       help="port of kie's upload host (default: --port + 1, or a free one "
                            "with --port 0)")
    serve.add_argument("--allow-non-loopback", action="store_true",
                       help="allow binding an address other than loopback")
    serve.add_argument("--realistic", action="store_true",
                       help=f"the published limits and realistic latencies: --rate-limit "
                            f"{REALISTIC_RATE_LIMIT} and --latency {REALISTIC_LATENCY} (each "
                            "overridable by the options below)")
    serve.add_argument("--latency", action="append", default=[], metavar="[MODEL=]S|MIN-MAX",
                       help="seconds until a task is done, e.g. 2, 1-5, stable-audio=20-40 "
                            "(repeatable, comma-separated; default 0: done at once)")
    serve.add_argument("--rate-limit", default=None, metavar="[PROVIDER=]N/SECONDS",
                       help="generation requests per sliding window per key, e.g. 20/10 or "
                            "kie=20/10,apikley=20/10 (default none)")
    serve.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                       help="running tasks (or requests in flight) per key (default unlimited; "
                            "ElevenLabs: the plan's)")
    serve.add_argument("--elevenlabs-plan", default="creator",
                       choices=[*ELEVENLABS_PLANS, "none"],
                       help="ElevenLabs concurrency limits of this plan (default creator: 5, "
                            "or 10 for Flash/Turbo models)")
    serve.add_argument("--quirks", default="all", metavar="all|none|NAME=P,...",
                       help="documented behaviours to emulate, as rates (default all: the "
                            "faithful mode); e.g. none,market_error_status=1")
    serve.add_argument("--credits", type=float, default=None, metavar="N",
                       help="starting balance of every key (default unlimited)")
    serve.add_argument("--faults", default="", metavar="KIND=P,...",
                       help="fault probabilities, e.g. 429=0.1,500=0.05,drop=0.01 (default none)")
    serve.add_argument("--seed", type=int, default=0,
                       help="seed of fault injection, quirks and latency (default 0)")
    serve.add_argument("--api-key", action="append", default=None, metavar="KEY",
                       help="accept only this key (repeatable; default: any non-empty key)")
    serve.add_argument("--webhook-hmac-key", default=None, metavar="KEY",
                       help="sign callbacks with this key, as kie.ai does (default unsigned)")
    serve.add_argument("--result-ttl", type=float, default=24 * 3600.0, metavar="SECONDS",
                       help="lifetime of result URLs after a task ends (default 86400)")
    serve.add_argument("--slow-seconds", type=float, default=30.0, metavar="SECONDS",
                       help="how long a `slow` fault holds a response (default 30)")
    serve.add_argument("--log-level", default="warning", help=argparse.SUPPRESS)
    serve.set_defaults(handler=handler)


def build_config(args: argparse.Namespace) -> SandboxConfig:
    latency = parse_latency(REALISTIC_LATENCY) if args.realistic else {}
    for spec in args.latency:
        latency.update(parse_latency(spec))
    rate_limit = args.rate_limit if args.rate_limit is not None else (
        REALISTIC_RATE_LIMIT if args.realistic else "none")
    try:
        quirks = parse_quirks(args.quirks)
    except QuirkError as exc:
        raise KnobError(str(exc)) from None
    return SandboxConfig(
        latency=latency, rate_limit=parse_rate_limit(rate_limit),
        max_concurrent=args.max_concurrent, credits=args.credits,
        elevenlabs_plan=None if args.elevenlabs_plan == "none" else args.elevenlabs_plan,
        quirks=quirks, api_keys=frozenset(args.api_key) if args.api_key else None,
        webhook_hmac_key=args.webhook_hmac_key, result_ttl_s=args.result_ttl,
        faults=parse_faults(args.faults), slow_response_s=args.slow_seconds, seed=args.seed,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_serve(args: argparse.Namespace) -> None:
    """Serve until interrupted; a bad option or a port that cannot be bound raises the
    `RunnerError` that says so."""
    from runner.errors import RunnerError, UsageError

    if not _is_loopback(args.host) and not args.allow_non_loopback:
        raise UsageError(f"refusing to bind {args.host}: the sandbox serves loopback only "
                         "unless --allow-non-loopback is given")
    try:
        config = build_config(args)
    except KnobError as exc:
        raise UsageError(str(exc)) from exc
    from runner.sandbox.server import serve

    upload_port = args.upload_port if args.upload_port is not None else (
        args.port + 1 if args.port else 0)
    try:
        serve(config, args.host, args.port, upload_port)
    except OSError as exc:
        raise RunnerError(f"cannot serve on {args.host}:{args.port} (uploads :{upload_port}): "
                          f"{exc}") from exc
