"""ElevenLabs direct: synchronous, the answer is the asset; `xi-api-key` auth.

    text-to-speech                   POST /v1/text-to-speech/{voice_id}?output_format=  → audio
    text-to-speech-with-timestamps   POST .../{voice_id}/with-timestamps → {audio_base64, alignment, ...}
    sound-generation                 POST /v1/sound-generation?output_format=           → audio
    speech-to-text                   POST /v1/speech-to-text (multipart)                → transcript

A job's input holds the path and query parameters next to the body fields
(schemas/openapi/elevenlabs/elevenlabs.yaml, `x-runner-input: body-and-parameters`);
`generate` splits them apart again. Audio is streamed into the engine's sink
chunk by chunk, base64 audio decoded as it arrives, so memory stays flat
however long the speech. What the API documents: docs/providers.md, "ElevenLabs".
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from runner.catalog.accounts import ProviderAccount
from runner.errors import (
    AccountRefused,
    ConcurrencyLimited,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)
from runner.providers.base import Request, Sink, Submitted, SyncResult, TaskStatus
from runner.providers.common import (
    excerpt,
    message_of,
    number,
    read_json,
    redact,
    retry_after_s,
    ua_headers,
)
from runner.providers.http import translate_errors

_TTS_QUERY = ("output_format", "enable_logging", "optimize_streaming_latency")
_SFX_QUERY = ("output_format", "enable_logging")
_STT_QUERY = ("enable_logging",)
_ACCOUNT_CODES = frozenset({"invalid_api_key", "quota_exceeded"})
# "wait for in-flight requests to finish", not "slow down" (docs/providers.md,
# "ElevenLabs: errors").
_CONCURRENCY_CODES = frozenset({"concurrent_limit_exceeded", "too_many_concurrent_requests"})
_MIME = {"mp3": "audio/mpeg", "opus": "audio/ogg", "wav": "audio/wav", "pcm": "audio/pcm",
         "ulaw": "audio/basic", "alaw": "audio/x-alaw-basic"}


class ElevenLabsAdapter:
    """ElevenLabs direct over the run's shared client. Synchronous: only `generate` works."""

    synchronous: bool = True

    def __init__(self, account: ProviderAccount, api_key: str, client: httpx.AsyncClient) -> None:
        self.account = account
        self._client = client
        self._key = api_key
        # No header at all for a missing key: the provider answers 401, as for a wrong one.
        self._headers = {**({"xi-api-key": api_key.strip()} if api_key.strip() else {}),
                         **ua_headers(client)}

    def __repr__(self) -> str:  # never the key
        return f"ElevenLabsAdapter(account={self.account.name!r})"

    async def generate(self, request: Request, sink: Sink) -> SyncResult:
        model = request.model.id
        fields = dict(request.input)
        if model in ("text-to-speech", "text-to-speech-with-timestamps"):
            voice_id = fields.pop("voice_id", None)
            if not isinstance(voice_id, str) or not voice_id:
                raise RequestRejected("text-to-speech needs a voice_id",
                                      provider=self.account.name, job_id=request.job_id)
            path = f"/v1/text-to-speech/{quote(voice_id, safe='')}"
            query = _pop(fields, _TTS_QUERY)
            if model == "text-to-speech":
                return await self._audio(request, path, query, fields, sink)
            return await self._with_timestamps(request, f"{path}/with-timestamps", query,
                                               fields, sink)
        if model == "sound-generation":
            query = _pop(fields, _SFX_QUERY)  # output_format is a query parameter here too
            return await self._audio(request, "/v1/sound-generation", query, fields, sink)
        if model == "speech-to-text":
            return await self._transcribe(request, fields)
        raise RequestRejected(f"ElevenLabs direct does not serve the model {model!r}",
                              provider=self.account.name, job_id=request.job_id)

    async def submit(self, request: Request) -> Submitted:
        raise RequestRejected("ElevenLabs direct is synchronous: use generate",
                              provider=self.account.name, job_id=request.job_id)

    async def status(self, task_id: str) -> TaskStatus:
        raise RequestRejected("ElevenLabs direct is synchronous: there is no task to poll",
                              provider=self.account.name, task_id=task_id)

    async def upload(self, path: Path, file_name: str) -> str:
        raise RequestRejected("ElevenLabs direct takes the audio in the speech-to-text request "
                              "itself (Request.audio_file); there is no upload",
                              provider=self.account.name)

    async def refresh_url(self, url: str) -> str | None:
        return None  # results are never URLs here

    def callback_task_id(self, body: bytes, headers: Mapping[str, str]) -> str:
        raise RequestRejected("ElevenLabs direct callbacks are not used",
                              provider=self.account.name)

    # --- the endpoints -----------------------------------------------------------
    async def _post_streamed(self, request: Request, path: str, query: dict[str, Any],
                             body: dict[str, Any], feed: Sink) -> httpx.Response:
        """POST and hand the answer's body to `feed` as it arrives; the (read) answer."""
        with translate_errors(self.account.name, request.job_id):
            async with self._client.stream("POST", f"{self.account.base_url}{path}",
                                           params=query, json=body,
                                           headers=self._headers) as response:
                await self._raise_for(response, request.job_id)
                async for chunk in response.aiter_bytes():
                    await feed(chunk)
        return response

    async def _audio(self, request: Request, path: str, query: dict[str, Any],
                     body: dict[str, Any], sink: Sink) -> SyncResult:
        response = await self._post_streamed(request, path, query, body, sink)
        return SyncResult(request_id=response.headers.get("request-id"),
                          credits=number(response.headers.get("character-cost")),
                          content_type=response.headers.get("content-type"))

    async def _with_timestamps(self, request: Request, path: str, query: dict[str, Any],
                               body: dict[str, Any], sink: Sink) -> SyncResult:
        field = Base64Field("audio_base64", sink)
        response = await self._post_streamed(request, path, query, body, field.feed)
        try:
            doc = await field.finish()
        except ValueError as exc:
            raise ProviderUnavailable(f"unreadable with-timestamps answer: {exc}",
                                      provider=self.account.name, job_id=request.job_id,
                                      status=response.status_code) from exc
        fmt = str(query.get("output_format") or "mp3_44100_128")
        return SyncResult(
            request_id=response.headers.get("request-id"),
            credits=number(response.headers.get("character-cost")),
            payload={"alignment": doc.get("alignment"),
                     "normalized_alignment": doc.get("normalized_alignment")},
            content_type=_MIME.get(fmt.split("_", 1)[0]))

    async def _transcribe(self, request: Request, fields: dict[str, Any]) -> SyncResult:
        query = _pop(fields, _STT_QUERY)
        fields.pop("file", None)  # the bytes come from Request.audio_file, never the input
        # Every field as a multipart part (a (None, value) part has no filename): the
        # endpoint takes multipart even when the audio is a source_url.
        parts: list[tuple[str, Any]] = [(k, (None, v)) for k, v in _form(fields)]
        if request.audio_file is None and not (fields.get("source_url")
                                               or fields.get("cloud_storage_url")):
            raise RequestRejected("speech-to-text needs a local file or a source_url",
                                  provider=self.account.name, job_id=request.job_id)
        handle = None
        if request.audio_file is not None:
            name = request.audio_file.name
            try:
                handle = request.audio_file.open("rb")
            except OSError as exc:
                raise RequestRejected(f"cannot read {request.audio_file}: {exc.strerror}",
                                      provider=self.account.name,
                                      job_id=request.job_id) from exc
            parts.append(("file", (name, handle,
                                   mimetypes.guess_type(name)[0] or "application/octet-stream")))
        try:
            with translate_errors(self.account.name, request.job_id):
                response = await self._client.post(
                    f"{self.account.base_url}/v1/speech-to-text", params=query, files=parts,
                    headers=self._headers)
        finally:
            if handle is not None:
                handle.close()
        await self._raise_for(response, request.job_id)
        transcript = read_json(response)
        if not isinstance(transcript, dict):
            raise ProviderUnavailable("the transcript is not a JSON object",
                                      provider=self.account.name, job_id=request.job_id,
                                      status=response.status_code)
        request_id = response.headers.get("request-id") or transcript.get("transcription_id")
        return SyncResult(request_id=str(request_id) if request_id else None,
                          credits=number(response.headers.get("character-cost")),
                          payload=transcript, content_type="application/json")

    # --- errors --------------------------------------------------------------------
    async def _raise_for(self, response: httpx.Response, job_id: str) -> None:
        if 200 <= response.status_code < 300:
            return
        await response.aread()
        raise self._error(response, job_id)

    def _error(self, response: httpx.Response, job_id: str) -> ProviderError:
        """The one table from an ElevenLabs answer to an exception (docs/providers.md,
        "ElevenLabs: errors")."""
        status_code = response.status_code
        body = read_json(response)
        code, message = _detail(body) if isinstance(body, dict) else ("", excerpt(response))
        text = redact(message or f"HTTP {status_code}", self._key)
        context: dict[str, Any] = {"provider": self.account.name, "job_id": job_id,
                                   "status": status_code, "code": code or None}
        if code == "quota_exceeded" or status_code == 402:
            return AccountRefused(f"out of credits: {text}", **context)
        if status_code == 401 or code in _ACCOUNT_CODES:
            return AccountRefused(f"API key refused: {text}", **context)
        if status_code == 429:
            if code in _CONCURRENCY_CODES:
                return ConcurrencyLimited(f"too many concurrent requests: {text}",
                                          retry_after_s=retry_after_s(response), **context)
            return RateLimited(f"rate limited: {text}", retry_after_s=retry_after_s(response),
                               **context)
        if status_code >= 500 or status_code == 408:
            return ProviderUnavailable(f"server error: {text}", **context)
        if 400 <= status_code < 500:  # 400 voice_not_found, max_character_limit_exceeded; 422
            return RequestRejected(f"request rejected: {text}", **context)
        return ProviderUnavailable(f"unexpected answer: {text}", **context)


def _detail(body: Mapping[str, Any]) -> tuple[str, str]:
    """(code, message) of `{"detail": {...}}`, FastAPI's `{"detail": [{loc, msg}]}`, or a string."""
    detail = body.get("detail")
    if isinstance(detail, dict):
        code = str(detail.get("code") or detail.get("status") or "")  # `status` is legacy
        return code, str(detail.get("message") or code)
    if isinstance(detail, list):
        problems = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or [])
                msg = str(item.get("msg") or "")
                problems.append(f"{loc}: {msg}" if loc else msg)
        return "", "; ".join(problems)
    if isinstance(detail, str):
        return "", detail
    return "", message_of(body)


def _pop(fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Move the query parameters out of the input; None means 'not given'."""
    return {n: v for n in names if (v := fields.pop(n, None)) is not None}


def _form(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Form fields as the SDK sends them: booleans lower-case, lists of strings repeated,
    objects and lists of objects as JSON."""
    out: list[tuple[str, str]] = []
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            out += [(name, str(v)) for v in value]
        elif isinstance(value, (dict, list)):
            out.append((name, json.dumps(value, separators=(",", ":"))))
        elif isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        else:
            out.append((name, str(value)))
    return out


_STRING_END = re.compile(rb'["\\]')


class Base64Field:
    """Decodes one base64 string field of a streamed JSON object into `sink` as it arrives.

    Everything else of the document is kept (the field's value replaced by null)
    for `json.loads` at the end, so the audio is never held whole. If the key is
    not found while streaming (say, split by more whitespace than the look-behind
    keeps), `finish` decodes the value from the parsed document instead.
    """

    _KEEP = 48  # bytes kept back while seeking, in case the key straddles two chunks

    def __init__(self, key: str, sink: Sink) -> None:
        self._key = re.compile(rb'"' + re.escape(key.encode()) + rb'"\s*:\s*')
        self._name = key
        self._sink = sink
        self._rest = bytearray()  # the document without the value
        self._held = b""  # unexamined bytes
        self._state = "seek"  # seek -> value -> inside -> done
        self._b64 = b""  # base64 characters not yet decoded (fewer than 4)
        self.decoded_bytes = 0

    async def feed(self, chunk: bytes) -> None:
        data = self._held + chunk
        self._held = b""
        while data:
            if self._state == "seek":
                found = self._key.search(data)
                if found is None:
                    keep = min(len(data), self._KEEP)
                    self._rest += data[:-keep]
                    self._held = data[-keep:]
                    return
                self._rest += data[:found.start()] + b'"' + self._name.encode() + b'":'
                data, self._state = data[found.end():], "value"
            elif self._state == "value":
                data = data.lstrip()
                if not data:
                    return
                if data[:1] != b'"':  # null or something odd: leave it to json.loads
                    self._state = "done"
                    continue
                self._rest += b"null"
                data, self._state = data[1:], "inside"
            elif self._state == "inside":
                data = await self._inside(data)
            else:
                self._rest += data
                return

    async def _inside(self, data: bytes) -> bytes:
        stop = _STRING_END.search(data)
        if stop is None:
            await self._decode(data)
            return b""
        await self._decode(data[:stop.start()])
        if data[stop.start():stop.start() + 1] == b'"':
            await self._decode(b"", final=True)
            self._state = "done"
            return data[stop.start() + 1:]
        escape = data[stop.start():]  # JSON escapes: \/ is a legal way to write '/'
        if len(escape) < 2 or (escape[1:2] == b"u" and len(escape) < 6):
            self._held = escape  # wait for the rest of the escape
            return b""
        if escape[1:2] == b"u":
            await self._decode(chr(int(escape[2:6], 16)).encode("ascii", "replace"))
            return escape[6:]
        if escape[1:2] not in b"/nrt":
            raise ValueError(f"unexpected escape {escape[:2]!r} in {self._name}")
        await self._decode(b"/" if escape[1:2] == b"/" else b"")  # \n \r \t: line breaks
        return escape[2:]

    async def _decode(self, text: bytes, *, final: bool = False) -> None:
        text = self._b64 + text
        cut = len(text) if final else len(text) // 4 * 4
        chunk, self._b64 = text[:cut], text[cut:]
        if final and len(chunk) % 4:
            chunk += b"=" * (-len(chunk) % 4)  # tolerate unpadded base64
        if not chunk:
            return
        try:
            audio = base64.b64decode(chunk, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{self._name} is not valid base64") from exc
        self.decoded_bytes += len(audio)
        await self._sink(audio)

    async def finish(self) -> dict[str, Any]:
        """The rest of the document, parsed. Raises ValueError if it is not a JSON object,
        the audio was cut off, or there was no audio at all."""
        if self._state in ("value", "inside"):
            raise ValueError(f"the answer ends inside {self._name}")
        parsed = json.loads(bytes(self._rest + self._held))
        doc: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        if self._state == "seek" and isinstance(doc.get(self._name), str):
            await self._decode(doc[self._name].encode(), final=True)  # found only now
        if self.decoded_bytes == 0:
            raise ValueError(f"the answer holds no {self._name}")
        return doc
