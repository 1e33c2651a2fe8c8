"""The `runner` command: parse arguments, build objects, call one function.

Commands stay thin; heavy modules are imported inside the handlers so that
`runner validate` of a large manifest does not pay for httpx, pydub or the
sandbox at start-up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from runner import __version__
from runner.errors import RunnerError
from runner.exitcodes import ExitCode, exit_code_for

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runner",
        description="Declarative batch runner for AI audio generation and transcription APIs.",
    )
    parser.add_argument("--version", action="version", version=f"runner {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    sandbox = commands.add_parser(
        "sandbox", help="a local emulator of every provider API", description=(
            "A faithful local emulator of the kie.ai/apikley market API, AI/ML API "
            "and ElevenLabs, for offline runs and tests."
        )
    )
    from runner.sandbox import cli as sandbox_cli  # argparse only: cheap to import

    sandbox_cli.configure(sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except RunnerError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return int(exit_code_for(exc))
    except KeyboardInterrupt:
        print("runner: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    raise SystemExit(main())
