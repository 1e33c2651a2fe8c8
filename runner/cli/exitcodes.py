"""The one mapping from outcomes to process exit codes."""

from __future__ import annotations

from enum import IntEnum

from runner import errors


class ExitCode(IntEnum):
    OK = 0
    JOBS_FAILED = 1
    INVALID = 2  # invalid manifest, bad usage, or --locked with work to do
    ACCOUNT_REFUSED = 3  # a key was refused or an account ran out of credits
    BUILD_BUSY = 4  # another process holds the build (runner run --no-wait, runner clean)
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as a shell reports it
    # The reader of the output went away (`runner status | head`): 128 + SIGPIPE, what a
    # process killed by SIGPIPE reports (as `git log | head` does under pipefail).
    BROKEN_PIPE = 141


def exit_code_for(exc: errors.RunnerError) -> ExitCode:
    """Exit code for an error that ended a command."""
    if isinstance(exc, (errors.ManifestError, errors.UsageError, errors.LockedBuildError)):
        return ExitCode.INVALID
    if isinstance(exc, errors.BuildBusy):
        return ExitCode.BUILD_BUSY
    if isinstance(exc, errors.AccountRefused):
        return ExitCode.ACCOUNT_REFUSED
    return ExitCode.JOBS_FAILED
