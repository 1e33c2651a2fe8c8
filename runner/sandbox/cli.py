"""`runner sandbox serve`: the sandbox as a standalone server.

Standard library only at module level: every `runner` command imports this to
build its parser. Starlette and uvicorn are imported by the handler.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from runner.sandbox.config import (
    FAULT_KINDS,
    KnobError,
    SandboxConfig,
    parse_faults,
    parse_latency,
    parse_rate_limit,
)


def configure(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND")
    commands.required = True
    serve = commands.add_parser(
        "serve", help="serve the emulator on a loopback port until interrupted",
        description="Serve every emulated provider API; prints the base URL first.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fault kinds:\n" + "\n".join(f"  {k:<14} {v}" for k, v in FAULT_KINDS.items()),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    serve.add_argument("--allow-non-loopback", action="store_true",
                       help="allow binding an address other than loopback")
    serve.add_argument("--latency", action="append", default=[], metavar="[MODEL=]S|MIN-MAX",
                       help="seconds until a task is done, e.g. 2, 1-5, stable-audio=20-40 "
                            "(repeatable, comma-separated)")
    serve.add_argument("--rate-limit", default="none", metavar="N/SECONDS",
                       help="generation requests per sliding window per key, e.g. 20/10")
    serve.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                       help="running tasks (or requests in flight) per key")
    serve.add_argument("--credits", type=float, default=None, metavar="N",
                       help="starting balance of every key (default unlimited)")
    serve.add_argument("--faults", default="", metavar="KIND=P,...",
                       help="fault probabilities, e.g. 429=0.1,500=0.05,drop=0.01")
    serve.add_argument("--seed", type=int, default=0, help="seed of fault injection and latency")
    serve.add_argument("--api-key", action="append", default=None, metavar="KEY",
                       help="accept only this key (repeatable; default: any non-empty key)")
    serve.add_argument("--webhook-hmac-key", default=None, metavar="KEY",
                       help="sign callbacks with this key, as kie.ai does")
    serve.add_argument("--result-ttl", type=float, default=24 * 3600.0, metavar="SECONDS",
                       help="lifetime of result URLs after a task ends (default 86400)")
    serve.add_argument("--slow-seconds", type=float, default=30.0, metavar="SECONDS",
                       help="how long a `slow` fault holds a response (default 30)")
    serve.add_argument("--log-level", default="warning", help=argparse.SUPPRESS)
    serve.set_defaults(handler=run_serve)


def build_config(args: argparse.Namespace) -> SandboxConfig:
    latency = {}
    for spec in args.latency:
        latency.update(parse_latency(spec))
    return SandboxConfig(
        latency=latency, rate_limit=parse_rate_limit(args.rate_limit),
        max_concurrent=args.max_concurrent, credits=args.credits,
        api_keys=frozenset(args.api_key) if args.api_key else None,
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


def run_serve(args: argparse.Namespace) -> int:
    from runner.errors import UsageError

    if not _is_loopback(args.host) and not args.allow_non_loopback:
        raise UsageError(f"refusing to bind {args.host}: the sandbox serves loopback only "
                         "unless --allow-non-loopback is given")
    try:
        config = build_config(args)
    except KnobError as exc:
        raise UsageError(str(exc)) from exc
    from runner.sandbox.server import serve

    try:
        serve(config, args.host, args.port)
    except OSError as exc:
        print(f"runner: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
