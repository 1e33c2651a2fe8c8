"""The market's File Upload API, the result-file host, and fetching audio by URL.

Uploads answer the per-endpoint pages' shape, `{success, code, msg, data:
{fileName, filePath, downloadUrl, fileSize, mimeType, uploadedAt}}`, or the
quickstart's `{fileId, originalName, uploadPath, fileUrl, downloadUrl}` (quirk
`upload_quickstart_shape`); without a `fileName` the stored name is random;
reusing a path and name overwrites; `downloadUrl` is percent-encoded. kie's
upload API lives on its own host (the upload listener, quirk `market_upload_host`).
Result files are served under `/files/`, expire after `result_ttl_s` (403, as an
expired signed URL does) and may be cut short by the `truncate` fault. The
sandbox fetches URLs only on loopback, and its own files without any HTTP at all.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import secrets
import time
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runner.sandbox.media import StoredFile
from runner.sandbox.web import (
    JSON,
    Dropped,
    Sandbox,
    Truncated,
    base_url,
    bearer_key,
    is_loopback_url,
    json_body,
    maybe_slow,
    sandbox_of,
)

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
_FETCH_TIMEOUT_S = 30.0


class FetchError(Exception):
    """A URL could not be turned into bytes."""


def own_file(sandbox: Sandbox, url: str) -> StoredFile | None:
    """The stored file a sandbox URL points at (any host: the path is what identifies it)."""
    path = urlsplit(url).path
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "files":
        return sandbox.media.files.get(parts[2])
    return None


async def fetch_audio(sandbox: Sandbox, url: str) -> bytes:
    stored = own_file(sandbox, url) if is_loopback_url(url) else None
    if stored is not None:
        if _expired(sandbox, stored):
            raise FetchError("the URL has expired (HTTP 403)")
        return await sandbox.media.content(stored)
    if not is_loopback_url(url):
        raise FetchError(f"the sandbox only downloads from 127.0.0.1/localhost, not {url!r}")
    try:
        async with httpx.AsyncClient(timeout=_FETCH_TIMEOUT_S, trust_env=False) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__} while fetching the URL") from exc
    if response.status_code != 200:
        raise FetchError(f"HTTP {response.status_code} while fetching the URL")
    return response.content


def _link_expired(sandbox: Sandbox, stored: StoredFile, expires: str | None) -> bool:
    """A link from `download-url` carries its own expiry (20 minutes), which replaces
    the file's original URL lifetime: that is what refreshing a link is for."""
    if expires is not None and expires.isdigit():
        return sandbox.state.now() >= int(expires)
    return _expired(sandbox, stored)


def _expired(sandbox: Sandbox, stored: StoredFile) -> bool:
    return stored.expires_s is not None and sandbox.state.now() >= stored.expires_s


async def serve_file(request: Request) -> Response:
    sandbox = sandbox_of(request)
    stored = sandbox.media.files.get(request.path_params["file_id"])
    if stored is None or stored.name != request.path_params["name"]:
        return Response(b"<Error><Code>NoSuchKey</Code></Error>", 404, media_type="application/xml")
    if _link_expired(sandbox, stored, request.query_params.get("expires")):
        return Response(b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message>"
                        b"</Error>", 403, media_type="application/xml")
    data = await sandbox.media.content(stored)
    await maybe_slow(sandbox)
    if sandbox.state.draw_fault("drop"):
        return Dropped()
    if sandbox.state.draw_fault("truncate"):
        return Truncated(data, stored.content_type)
    return Response(data, media_type=stored.content_type)


def _fail(code: int, msg: str) -> JSON:
    return JSON({"success": False, "code": code, "msg": msg}, status_code=code)


def _target(fields: Any) -> tuple[str, str] | JSON:
    upload_path = fields.get("uploadPath")
    if not isinstance(upload_path, str) or not upload_path.strip():
        return _fail(400, "uploadPath is required")
    if upload_path.startswith("/") or upload_path.endswith("/"):
        return _fail(400, "uploadPath must not start or end with '/'")
    name = fields.get("fileName")
    if name is not None and (not isinstance(name, str) or "/" in name or not name.strip()):
        return _fail(400, "fileName must be a plain file name")
    return upload_path, name or ""


def random_name(original: str, mime: str | None) -> str:
    """"If not provided, a random file name will be generated": random, keeping the
    extension the file came with (or one for its MIME type)."""
    suffix = PurePosixPath(original).suffix.lower() if original else ""
    if not suffix and mime:
        suffix = mimetypes.guess_extension(mime) or ""
    return f"{secrets.token_hex(10)}{suffix}"


async def _store(request: Request, data: bytes, upload_path: str, name: str, mime: str | None,
                 *, original: str = "") -> Response:
    sandbox = sandbox_of(request)
    if len(data) > MAX_UPLOAD_BYTES:
        return _fail(400, f"File too large: at most {MAX_UPLOAD_BYTES} bytes")
    state = sandbox.state
    file_id = state.new_id()
    name = name or random_name(original, mime)
    mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
    provider = "apikley" if request.url.path.startswith("/apikley") else "kie"
    now = state.now()
    stored = sandbox.media.add(StoredFile(
        file_id=file_id, name=name, content_type=mime, created_s=now,
        expires_s=now + sandbox.config.upload_ttl_s, data=data,
        owner=(provider, f"{upload_path}/{name}")))
    uploaded = datetime.fromtimestamp(now if now > 0 else time.time(), tz=UTC)
    # A URL, so the name is percent-encoded (spaces, non-ASCII, '#', '?'...).
    url = f"{base_url(request)}/files/{stored.file_id}/{quote(name, safe='')}"
    if state.quirk("upload_quickstart_shape"):
        data_shape: dict[str, Any] = {
            "fileId": stored.file_id, "originalName": original or name, "uploadPath": upload_path,
            "fileUrl": url, "downloadUrl": url}
    else:
        data_shape = {
            "fileName": name, "filePath": f"{upload_path}/{name}", "downloadUrl": url,
            "fileSize": len(data), "mimeType": mime,
            "uploadedAt": uploaded.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    return JSON({"success": True, "code": 200, "msg": "File uploaded successfully",
                 "data": data_shape})


def _authorised(request: Request) -> bool:
    return sandbox_of(request).state.key_accepted(bearer_key(request))


async def stream_upload(request: Request) -> Response:
    if not _authorised(request):
        return _fail(401, "You do not have access permissions")
    form = await request.form(max_part_size=MAX_UPLOAD_BYTES)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return _fail(400, "file is required")
    target = _target(form)
    if isinstance(target, JSON):
        return target
    data = await upload.read()
    return await _store(request, data, target[0], target[1], upload.content_type,
                        original=upload.filename or "")


async def base64_upload(request: Request) -> Response:
    if not _authorised(request):
        return _fail(401, "You do not have access permissions")
    try:
        body = await json_body(request)
    except ValueError:
        return _fail(400, "Request body is not valid JSON")
    if not isinstance(body, dict) or not isinstance(body.get("base64Data"), str):
        return _fail(400, "base64Data is required")
    target = _target(body)
    if isinstance(target, JSON):
        return target
    encoded: str = body["base64Data"]
    mime = None
    if encoded.startswith("data:"):
        header, _, encoded = encoded.partition(",")
        mime = header[5:].split(";")[0] or None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return _fail(400, "base64Data is not valid base64")
    return await _store(request, data, target[0], target[1], mime)


async def url_upload(request: Request) -> Response:
    if not _authorised(request):
        return _fail(401, "You do not have access permissions")
    try:
        body = await json_body(request)
    except ValueError:
        return _fail(400, "Request body is not valid JSON")
    url = body.get("fileUrl") if isinstance(body, dict) else None
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        return _fail(400, "fileUrl must be an http or https URL")
    target = _target(body)
    if isinstance(target, JSON):
        return target
    try:
        data = await fetch_audio(sandbox_of(request), url)
    except FetchError as exc:  # the URL's fault (off loopback, gone): not a server error
        return _fail(400, f"File download failed: {exc}")
    # "Automatically extracts file names from URLs or uses custom file names".
    name = target[1] or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return await _store(request, data, target[0], name, None, original=name)


def routes(upload_prefix: str) -> list[Route]:
    return [
        Route(f"{upload_prefix}/api/file-stream-upload", stream_upload, methods=["POST"]),
        Route(f"{upload_prefix}/api/file-base64-upload", base64_upload, methods=["POST"]),
        Route(f"{upload_prefix}/api/file-url-upload", url_upload, methods=["POST"]),
    ]


def file_routes() -> list[Route]:
    return [Route("/files/{file_id}/{name}", serve_file, methods=["GET"])]


