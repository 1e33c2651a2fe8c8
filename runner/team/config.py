"""Where the team's remote cache is, how to reach it, and what a run may do with it.

    RUNNER_REMOTE_CACHE=s3://BUCKET/PREFIX     or `remote_cache:` in the manifest (the
                                               environment wins, as for base URLs)
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   required; AWS_SESSION_TOKEN for temporary keys
    AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL    any S3-compatible server (default: AWS itself)
    AWS_REGION or AWS_DEFAULT_REGION           default us-east-1
    --remote-cache-mode / RUNNER_REMOTE_CACHE_MODE   read | readwrite (default) | off

Credentials come from these variables only. The client library could also look
for instance or container credentials, but that means requests to metadata
addresses the user never named; a missing key is said plainly instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from runner.errors import UsageError

if TYPE_CHECKING:
    from runner.manifest.types import Pipeline

URL_VARIABLE = "RUNNER_REMOTE_CACHE"
MODE_VARIABLE = "RUNNER_REMOTE_CACHE_MODE"
MANIFEST_KEY = "remote_cache"
DEFAULT_REGION = "us-east-1"
# S3 bucket naming rules: 3-63 characters, lower-case letters, digits, dots and hyphens.
_URL = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?\Z")


class Mode(StrEnum):
    READ = "read"  # restore from the team's results; record nothing
    READWRITE = "readwrite"  # restore, and record what this machine buys
    OFF = "off"  # no remote cache at all, even where one is configured

    @property
    def reads(self) -> bool:
        return self is not Mode.OFF

    @property
    def writes(self) -> bool:
        return self is Mode.READWRITE


@dataclass(frozen=True, slots=True)
class RemoteCacheConfig:
    url: str  # s3://BUCKET/PREFIX as the user wrote it (normalised), for messages
    bucket: str
    prefix: str  # without leading or trailing '/'; "" for the bucket's root
    endpoint: str | None  # None: AWS
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    mode: Mode = Mode.READWRITE

    @property
    def where(self) -> str:
        """The cache as messages name it: its URL, and the server unless it is AWS."""
        return f"{self.url} at {self.endpoint}" if self.endpoint else self.url


def parse_url(text: str, origin: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://BUCKET/PREFIX`; `origin` says where the text came from."""
    match = _URL.match(text.strip())
    if match is None:
        raise UsageError(f"{origin}: expected s3://BUCKET/PREFIX (a bucket name of 3-63 "
                         f"lower-case letters, digits, dots and hyphens), not {text!r}")
    prefix = "/".join(part for part in (match["prefix"] or "").split("/") if part)
    return match["bucket"], prefix


def configured_url(pipeline: Pipeline | None, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(URL, where it was set) of the remote cache, or None if none is configured.

    The manifest's `remote_cache:` is read from the document the loader kept: the
    pipeline schema has already checked that it is an s3:// string.
    """
    value = env.get(URL_VARIABLE, "").strip()
    if value:
        return value, URL_VARIABLE
    if pipeline is not None:
        data = pipeline.document.data
        declared = data.get(MANIFEST_KEY) if isinstance(data, dict) else None
        if isinstance(declared, str) and declared.strip():
            return declared, f"{pipeline.document.display}: {MANIFEST_KEY}"
    return None


def parse_mode(value: str | None, env: Mapping[str, str]) -> Mode | None:
    """The mode asked for: the option, else RUNNER_REMOTE_CACHE_MODE, else None."""
    text = value if value is not None else env.get(MODE_VARIABLE, "").strip() or None
    if text is None:
        return None
    try:
        return Mode(text.lower())
    except ValueError:
        origin = "--remote-cache-mode" if value is not None else MODE_VARIABLE
        raise UsageError(f"{origin}: expected one of read, readwrite, off; not {text!r}"
                         ) from None


def resolve(pipeline: Pipeline | None, env: Mapping[str, str], *, mode: str | None = None,
            url: str | None = None) -> RemoteCacheConfig | None:
    """The remote cache to use, or None (none configured, or mode off).

    `url` (a command's `--remote-cache`) wins over the environment and the manifest.
    Raises UsageError for a malformed URL or mode, a mode without a cache, or
    missing credentials.
    """
    chosen = parse_mode(mode, env)
    found = (url, "--remote-cache") if url else configured_url(pipeline, env)
    if chosen is Mode.OFF:
        return None
    if found is None:
        if chosen is not None:
            raise UsageError(f"remote cache mode '{chosen.value}' needs a remote cache: set "
                             f"{URL_VARIABLE}=s3://BUCKET/PREFIX or `{MANIFEST_KEY}:` in the "
                             "manifest")
        return None
    text, origin = found
    bucket, prefix = parse_url(text, origin)
    access_key = env.get("AWS_ACCESS_KEY_ID", "").strip()
    secret = env.get("AWS_SECRET_ACCESS_KEY", "").strip()
    if not access_key or not secret:
        missing = " and ".join(name for name, value in (("AWS_ACCESS_KEY_ID", access_key),
                                                         ("AWS_SECRET_ACCESS_KEY", secret))
                               if not value)
        raise UsageError(f"remote cache s3://{bucket}/{prefix}: no credentials: set {missing} "
                         "(in the environment or the .env file beside the manifest), or run "
                         "with --remote-cache-mode off")
    endpoint = (env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or "").strip()
    region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
    return RemoteCacheConfig(
        url=f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
        bucket=bucket, prefix=prefix, endpoint=endpoint.rstrip("/") or None,
        region=region or DEFAULT_REGION, access_key_id=access_key, secret_access_key=secret,
        session_token=env.get("AWS_SESSION_TOKEN", "").strip() or None,
        mode=chosen or Mode.READWRITE)
