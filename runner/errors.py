"""The one exception tree of `runner`.

Every error a user can meet is a `RunnerError`; its `str()` is the sentence the
user reads, and it carries its context (file and line, job id, provider, task
id) as attributes. Foreign exceptions (yaml, jsonschema, httpx, ffmpeg) are
translated into this tree at one boundary each, with `raise ... from exc`.

    RunnerError
    ├── UsageError                  bad command line or environment (exit 2)
    ├── ManifestError               the manifest cannot be used (exit 2)
    │   └── ManifestInvalid         validation found problems: carries every `Problem`
    ├── SchemaError                 an OpenAPI document cannot be turned into JSON Schemas
    ├── ProviderError               a provider answered with an error, or could not be reached
    │   ├── TransportError          no usable answer (connect error, timeout, connection lost)
    │   ├── RateLimited             429 and kin: nothing was created, try later
    │   │   └── ConcurrencyLimited  too many requests in flight, not too many per second
    │   ├── ProviderUnavailable     455, 503, 5xx before work was done: try later
    │   ├── AccountRefused          401, 402, out-of-credits 403: stop this account
    │   ├── RequestRejected         400, 404, 422, 505: this request will never work
    │   │   └── TaskUnknown         the provider has no record of a task (yet, or any more)
    │   └── GenerationFailed        the task ran and failed (501, state `fail`)
    ├── ExecutionError              a job could not be completed
    │   └── DownloadError           a result could not be fetched or failed verification
    │       ├── DownloadRefused     a result URL the runner will not fetch (scheme, address)
    │       └── ResultExpired       a result URL answered 403/404/410: expired or gone
    ├── StoreError                  the journal, cache or lockfile cannot be used
    │   ├── LockedBuildError        --locked, and something would be generated
    │   ├── BuildBusy               another process holds the build (runner run --no-wait)
    │   ├── RemoteCacheError        the team's remote cache (S3) cannot be used or reached
    │   ├── CoordinatorError        the team's ledger of claims and budgets (PostgreSQL)
    │   └── SharedLimiterError      the team's shared rate limiter (Redis)
    └── AudioError                  ffmpeg is missing, or audio cannot be decoded/encoded
        ├── InvalidAudio            a file is not the audio asked for (format, truncated)
        └── FfmpegNotFound
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class RunnerError(Exception):
    """Root of every error `runner` raises on purpose."""


class UsageError(RunnerError):
    """The command line or the environment is wrong (a missing key, a bad option)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest, located in its source file.

    `path` is a JSONPath-like location in the document (`$.jobs[3].input.voice`),
    `job_id` the id of the job it belongs to when there is one.
    """

    file: str
    line: int
    column: int
    path: str
    message: str
    job_id: str | None = None

    def __str__(self) -> str:
        job_id = self.job_id if self.job_id is None or len(self.job_id) <= 80 \
            else self.job_id[:77] + "..."
        job = f" (job {job_id})" if job_id else ""
        text = f"{self.file}:{self.line}:{self.column}: {self.path}{job}: {self.message}"
        # One problem, one line: a value quoted in a message may hold a newline.
        return text if text.isprintable() else "".join(
            c if c.isprintable() else repr(c)[1:-1] for c in text)

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.column, self.message)


class ManifestError(RunnerError):
    """A manifest cannot be read at all (missing file, not a pipeline)."""


class ManifestInvalid(ManifestError):
    """Validation found problems; every one of them is in `problems`."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: p.sort_key)
        count = len(self.problems)
        head = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{head}\n{count} problem{'s' if count != 1 else ''} found")


class SchemaError(RunnerError):
    """An OpenAPI document could not be turned into model JSON Schemas."""


class ProviderError(RunnerError):
    """A provider refused a request or could not be reached.

    `status` is the HTTP status, `code` the status the body carried (the market API
    says 200 over HTTP and puts the real status in the body), `retry_after_s` the
    provider's own hint when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        job_id: str | None = None,
        task_id: str | None = None,
        status: int | None = None,
        code: int | str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.message = message
        self.provider = provider
        self.job_id = job_id
        self.task_id = task_id
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s
        super().__init__(message)

    def __str__(self) -> str:
        where = [part for part in (self.provider, self.job_id) if part]
        prefix = f"{'/'.join(where)}: " if where else ""
        code = f" [{self.code}]" if self.code not in (None, "") else ""
        task = f" (task {self.task_id})" if self.task_id else ""
        return f"{prefix}{self.message}{code}{task}"


class TransportError(ProviderError):
    """No usable answer. `request_sent` tells whether the provider may have seen it."""

    def __init__(self, message: str, *, request_sent: bool, **context: object) -> None:
        self.request_sent = request_sent
        super().__init__(message, **context)  # type: ignore[arg-type]


class RateLimited(ProviderError):
    """The provider rejected the request for rate or concurrency; nothing was created."""


class ConcurrencyLimited(RateLimited):
    """A 429 that says too many requests are *in flight*, not too many per second.

    The adapter that read the answer knows its provider's wording (ElevenLabs
    `concurrent_limit_exceeded`, docs/providers.md "ElevenLabs: errors"; AI/ML API's
    "concurrency limit"; the market's "running tasks") and raises this; the limiter
    then lowers the account's in-flight cap instead of backing off its request rate.
    """


class ProviderUnavailable(ProviderError):
    """The provider is down or in maintenance and did no work; the request can be repeated."""


class AccountRefused(ProviderError):
    """The key was refused or the account is out of credits: stop submitting to it."""


class RequestRejected(ProviderError):
    """The provider says this request is invalid; repeating it cannot help."""


class TaskUnknown(RequestRejected):
    """A status poll found no record of the task: 404, or the market's documented
    `recordInfo is null` (the task exists but is not visible yet). Soon after its
    creation that means "wait"; much later, that the record has expired."""


class GenerationFailed(ProviderError):
    """The task was accepted and ran, but the generation failed."""


class ExecutionError(RunnerError):
    """A job could not be completed; carries the job id."""

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(message)


class DownloadError(ExecutionError):
    """A result could not be downloaded, or the file is not the audio that was asked for."""


class DownloadRefused(DownloadError):
    """A result URL, or a redirect from it, that the runner will not follow: another
    scheme than http(s), a public URL leading into private address space, too many
    redirects. Repeating cannot help."""


class ResultExpired(DownloadError):
    """The result URL answered 403/404/410: it has expired or was never valid."""


class StoreError(RunnerError):
    """The journal, cache or lockfile is unreadable or inconsistent."""


class LockedBuildError(StoreError):
    """`--locked` was given and the plan would generate something."""


class BuildBusy(StoreError):
    """Another process is writing this build (it holds the build lock), and this one
    was told not to wait (`runner run --no-wait`, `runner clean`)."""


class RemoteCacheError(StoreError):
    """The team's remote cache refused a request or could not be reached.

    Never a miss: a job whose lookup fails is stopped rather than bought again
    (`--remote-cache-mode off` is the explicit way round). `str()` names the cache,
    what failed and what to check; it never carries a credential.
    """


class CoordinatorError(StoreError):
    """The team's ledger of claims and budgets (PostgreSQL, RUNNER_COORDINATOR) refused a
    request or could not be reached. A job whose claim cannot be taken is not bought:
    the ledger is what keeps two machines from buying the same request. `str()` names
    the server (never its password), what failed and what to check."""


class SharedLimiterError(StoreError):
    """The team's shared rate limiter (Redis, RUNNER_LIMITER) could not be reached or
    refused a command. No request is sent without its slot: the account's limit is the
    team's, and a machine that cannot see the others' use of it cannot keep it."""


class AudioError(RunnerError):
    """Audio could not be decoded, verified or encoded."""


class InvalidAudio(AudioError):
    """A file is not the audio that was asked for: wrong format, truncated or not audio.

    `problem` is what was found, `path` the file (filled in by the caller that
    knows it), `expected` the format that was asked for, when there was one.
    """

    def __init__(self, problem: str, *, path: str | None = None, expected: str | None = None):
        self.problem = problem
        self.path = path
        self.expected = expected
        super().__init__(problem)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        said = self.problem.startswith("expected")
        wanted = f" (expected {self.expected})" if self.expected and not said else ""
        return f"{where}{self.problem}{wanted}"


class FfmpegNotFound(AudioError):
    """No ffmpeg binary: neither on PATH, nor $RUNNER_FFMPEG, nor from imageio-ffmpeg."""


def without_password(text: str) -> str:
    """`text` (a URL, or a message that holds one) as messages show it: a password in
    it (`scheme://user:PASSWORD@host`) becomes `***`."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)


def shown(text: str, limit: int = 60) -> str:
    """`text` for a one-line message: control characters escaped, long text cut."""
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text
