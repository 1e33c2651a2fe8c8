"""Fetching results: streamed to disk in constant memory, verified, kept by digest.

A result URL is fetched only over http(s) and never beyond `max_bytes`. The
bytes go to a temp file inside the cache's folder while their sha256 is
computed; the file is then checked to be the audio that was asked for
(`runner.audio.verify.verify_audio`: structure, codec, sample rate, duration)
and only then adopted into the cache. Raw PCM/G.711 answers are wrapped in a
WAV header on the way, so every stored file is self-describing.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

import aiofiles
import httpx

from runner.audio.formats import FormatSpec, carries_wav_header, wav_header
from runner.audio.verify import AudioInfo, verify_audio, verify_audio_bytes
from runner.errors import AudioError, DownloadError, DownloadRefused
from runner.providers.http import translate_errors
from runner.store.cache import Blob, ContentCache, file_digest

# Coalesce network chunks into writes of this size: one thread hop per 256 KiB
# instead of one per network read, and still a small, constant memory bound.
_WRITE_BYTES = 256 * 1024
# Above this size, verification (pure Python) runs in a worker thread.
_VERIFY_INLINE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_BYTES = 1 << 30
MAX_REDIRECTS = 5  # storage front ends redirect once or twice; more is a loop
_PROGRESS_ABOVE_BYTES = 8 << 20
Progress = Callable[[int, int], None]


class ResultExpired(DownloadError):
    """The result URL answered 403/404/410: it has expired or was never valid."""


@dataclass(frozen=True, slots=True)
class Fetched:
    blob: Blob
    info: AudioInfo | None
    # The blob's bytes when the result was small enough to be verified in memory: the
    # engine writes the job's output from them (no read, no second hash). None for a
    # result that went through a temp file.
    data: bytes | None = None


def check_url(url: str, job_id: str | None) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadRefused(f"refusing to fetch a result URL with scheme '{scheme}:' "
                              "(only http and https)", job_id=job_id)


async def is_private(url: str) -> bool:
    """Whether the URL's host is in private address space: loopback, private networks,
    link-local (cloud metadata), or any other address that is not globally routable.
    A host name counts as private if any of its addresses is; one that does not
    resolve counts as public (the request will fail on its own)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not _global(ipaddress.ip_address(host))
    except ValueError:
        pass  # a name, not an address
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80),
            type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return any(not _global(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
               for info in found)


def _global(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def _next_hop(url: str, response: httpx.Response, *, allow_private: bool,
                    job_id: str | None) -> str:
    """Where a redirect leads, if the runner may follow it (else DownloadRefused)."""
    target = urljoin(url, response.headers["location"])
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadRefused(f"the result URL redirects to a '{scheme}:' URL; only http and "
                              "https are followed", job_id=job_id)
    if not allow_private and await is_private(target) and not await is_private(url):
        host = urlsplit(target).hostname
        raise DownloadRefused(f"the result URL redirects into private address space "
                              f"({host}); a public URL may not lead there", job_id=job_id)
    return target


class CacheWriter:
    """Streams bytes into a temp file in the cache: hashing, coalescing, capping.

        async with CacheWriter(cache, spec=..., ext="mp3", max_bytes=..., job_id=...) as w:
            async for chunk in source:
                await w.write(chunk)
        fetched = w.fetched  # verified and adopted into the cache
    """

    def __init__(self, cache: ContentCache, *, spec: FormatSpec | None, ext: str,
                 max_bytes: int = DEFAULT_MAX_BYTES, job_id: str | None = None,
                 progress: Progress | None = None, expected_bytes: int | None = None) -> None:
        self.cache = cache
        self.path: Path | None = None  # the temp file, once the result outgrows the buffer
        self.spec = spec
        self.ext = ext
        self.max_bytes = max_bytes
        self.job_id = job_id
        self.digest = hashlib.sha256()
        self.buffer = bytearray()
        self.size = 0
        self.file: Any = None
        self.fetched: Fetched | None = None
        # Large results report their progress (in MiB) for the live display.
        self.progress = progress if expected_bytes and expected_bytes > _PROGRESS_ABOVE_BYTES \
            else None
        self.expected_mib = (expected_bytes or 0) >> 20
        self.header_bytes = 0  # the WAV header this writer put before raw samples

    async def __aenter__(self) -> Self:
        # The file is opened only when the first 256 KiB are buffered: a small result
        # (most sound effects and speech lines) never needs a temp file of its own.
        if self.spec is not None and self.spec.raw:
            self.buffer += wav_header(self.spec, 0)  # sizes patched when finished
            self.header_bytes = len(self.buffer)
        return self

    def _keep_provider_wav(self) -> None:
        """Raw samples that arrived already in a WAV file (a provider may wrap pcm/ulaw/alaw
        itself) are kept as they came: this writer's header is dropped, never stacked on
        theirs. Called once, before the first byte is written or hashed."""
        if self.header_bytes and carries_wav_header(self.buffer[self.header_bytes:]):
            del self.buffer[:self.header_bytes]
            self.header_bytes = 0

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.fetched = await self._finish()
        finally:
            if self.file is not None:
                await self.file.close()
            if self.path is not None:
                self.path.unlink(missing_ok=True)

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise DownloadError(f"result is larger than the {self.max_bytes:,}-byte cap",
                                job_id=self.job_id)
        self.buffer += chunk
        if len(self.buffer) >= _WRITE_BYTES:
            await self._flush()
            if self.progress is not None and (self.size >> 20) != ((self.size - len(chunk)) >> 20):
                self.progress(self.size >> 20, self.expected_mib)

    async def _flush(self) -> None:
        if self.file is None:
            self._keep_provider_wav()
        if self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            self.digest.update(data)
            if self.file is None:
                self.path = self.cache.new_temp(self.ext)
                self.file = await aiofiles.open(self.path, "xb")
            await self.file.write(data)

    async def _finish(self) -> Fetched:
        """Flush, fix the WAV header of raw audio, fsync, verify, adopt into the cache."""
        if self.size == 0:
            raise DownloadError("the result is empty (0 bytes)", job_id=self.job_id)
        if self.path is None:
            return await self._finish_in_memory()
        await self._flush()
        await self.file.flush()
        await asyncio.to_thread(os.fsync, self.file.fileno())
        await self.file.close()
        self.file = None
        sha = self.digest.hexdigest()
        if self.header_bytes:
            assert self.spec is not None  # only raw specs get a header
            await asyncio.to_thread(_patch_header, self.path, wav_header(self.spec, self.size))
            sha = await asyncio.to_thread(file_digest, self.path)
        try:
            info = await _verify(self.path, self.spec, self.size)
        except AudioError as exc:
            raise DownloadError(f"the result is not the audio that was asked for: {exc}",
                                job_id=self.job_id) from exc
        blob = await asyncio.to_thread(self.cache.adopt, self.path, sha, self.ext, synced=True)
        return Fetched(blob, info)

    async def _finish_in_memory(self) -> Fetched:
        """A result that fits the write buffer (most sound effects and lines): verified
        and hashed in memory, then appended to the cache's pack (`put_verified`), with
        no temp file of its own."""
        self._keep_provider_wav()
        data = bytes(self.buffer)
        self.buffer.clear()
        if self.header_bytes:  # the header's sizes, now known
            assert self.spec is not None  # only raw specs get a header
            header = wav_header(self.spec, self.size)
            data = header + data[len(header):]
        if self.spec is None:
            info = None
        else:
            try:
                info = verify_audio_bytes(data, self.spec, label=f"the {self.ext} result")
            except AudioError as exc:
                raise DownloadError(f"the result is not the audio that was asked for: {exc}",
                                    job_id=self.job_id) from exc
        sha = hashlib.sha256(data).hexdigest()
        return Fetched(await self.cache.put_verified(data, sha, self.ext), info, data)


def _patch_header(path: Path, header: bytes) -> None:
    with path.open("r+b") as fh:
        fh.write(header)
        fh.flush()
        os.fsync(fh.fileno())


async def _verify(path: Path, spec: FormatSpec | None, size: int) -> AudioInfo | None:
    if spec is None:
        return None
    if size > _VERIFY_INLINE_BYTES:
        return await asyncio.to_thread(verify_audio, path, spec)
    return verify_audio(path, spec)


async def fetch(client: httpx.AsyncClient, url: str, cache: ContentCache, *,
                spec: FormatSpec | None, ext: str, provider: str, job_id: str | None,
                task_id: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                progress: Progress | None = None, allow_private: bool = False) -> Fetched:
    """Download a result URL into the cache. Raises ResultExpired, DownloadError,
    TransportError (retryable: a download may always be repeated), DownloadRefused.

    Redirects are followed here, hop by hop, at most `MAX_REDIRECTS`: only to http(s),
    and from a public URL into private address space only if `allow_private` (the
    account itself is there: the sandbox on loopback). No credential is ever sent."""
    check_url(url, job_id)
    for _ in range(MAX_REDIRECTS + 1):
        with translate_errors(provider, job_id, task_id):
            async with client.stream("GET", url, follow_redirects=False) as response:
                if not response.has_redirect_location:
                    return await _store(response, cache, spec=spec, ext=ext, job_id=job_id,
                                        max_bytes=max_bytes, progress=progress)
        url = await _next_hop(url, response, allow_private=allow_private, job_id=job_id)
    raise DownloadRefused(f"the result URL redirects more than {MAX_REDIRECTS} times",
                          job_id=job_id)


async def _store(response: httpx.Response, cache: ContentCache, *, spec: FormatSpec | None,
                 ext: str, job_id: str | None, max_bytes: int,
                 progress: Progress | None) -> Fetched:
    """One answer's body: checked, streamed into the cache, verified."""
    if response.status_code in (403, 404, 410):
        raise ResultExpired(f"result URL answered {response.status_code}: expired or gone",
                            job_id=job_id)
    if response.status_code >= 400:
        raise DownloadError(f"result URL answered HTTP {response.status_code}", job_id=job_id)
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise DownloadError(f"result is {int(declared):,} bytes, over the {max_bytes:,}-byte "
                            "cap", job_id=job_id)
    expected = int(declared) if declared and declared.isdigit() else None
    async with CacheWriter(cache, spec=spec, ext=ext, max_bytes=max_bytes, job_id=job_id,
                           progress=progress, expected_bytes=expected) as writer:
        async for chunk in response.aiter_bytes():
            await writer.write(chunk)
    assert writer.fetched is not None
    return writer.fetched
