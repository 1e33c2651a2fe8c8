"""Quirks: documented behaviours of the real APIs that a kind emulator would leave out.

Each quirk is one knob: the probability, in [0, 1], that it shows on an answer
where it can. 1 makes it show every time (a test proving a client copes), 0
switches it off, anything between mixes both shapes the way the documents
disagree about them. The defaults are the **faithful** mode: everything the
provider documents (docs/providers.md) and public clients record, at
rates that exercise both shapes; `SandboxConfig()` starts from it, so does every
test of the engine.

Behaviours that are simply part of the API (streaming endpoints, `wav_*` formats,
`request-id` and `history-item-id` headers, expiry of result URLs) are not
quirks: they are always on. Which is which, and what documents each, is the
table in docs/sandbox.md; `tests/sandbox/test_quirks.py` proves every row.

Standard library only: the CLI imports this at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quirk:
    name: str
    faithful: float  # the default rate
    effect: str  # what the sandbox does when it shows
    source: str  # where the real API documents it


_ALL = (
    Quirk("market_error_status", 0.5,
          "a market error answer carries its body code as its HTTP status too (HTTP 402, 422, "
          "455, ...); otherwise HTTP 200 with the code only in the body",
          "docs/providers.md, \"Market API: answers and error codes\" (the body code is the "
          "truth; the OpenAPI documents' '500' response) and \"Market API: rate limits\" "
          "(HTTP 429)"),
    Quirk("market_message_key", 1.0,
          "`message` instead of `msg` where the docs show it: createTask of the TTS model on "
          "kie, kie's recordInfo; otherwise always `msg`",
          "docs/providers.md, \"Market API: answers and error codes\" (the TTS page and the "
          "task-details example say `message`)"),
    Quirk("market_fail_fields", 1.0,
          "`failCode`/`failMsg` are \"\" (not null) before and after success, and a failed "
          "task's `failCode` is one of \"500\", \"GENERATION_FAILED\" or \"\" (with `failMsg`)",
          "docs/providers.md, \"Market API: task details and states\" (the callback failure "
          "example's \"500\", GENERATION_FAILED, the task-details examples' \"\")"),
    Quirk("market_result_object_null", 1.0,
          "`resultJson` holds both keys, the unused one null: `{resultUrls: [...], resultObject: "
          "null}` (and `resultUrls: null` beside a transcript)",
          "docs/providers.md, \"Market API: task details and states\" (newer documents return "
          "both keys)"),
    Quirk("market_record_id", 1.0, "createTask's `data` carries `recordId` beside `taskId`",
          "docs/providers.md, \"Market API: createTask\" (apikley's OpenAPI documents)"),
    # The task not visible just after createTask (`recordInfo is null`, `data: null`) is
    # not a quirk but the knob `invisible_s` (default 0): most tests and clients read a
    # new task once, and the faithful mode is every test's default.
    Quirk("market_upload_host", 1.0,
          "the kie File Upload API is served only by the sandbox's upload listener (its own "
          "host); the API host answers 404 there",
          "docs/providers.md, \"Market API: hosts and auth\" (upload base "
          "https://kieai.redpandaai.co)"),
    Quirk("upload_quickstart_shape", 0.5,
          "an upload answers the quickstart's `data` shape `{fileId, originalName, uploadPath, "
          "fileUrl, downloadUrl}` instead of the endpoint pages' `{fileName, filePath, "
          "downloadUrl, fileSize, mimeType, uploadedAt}`",
          "docs/providers.md, \"Market API: file upload\""),
    Quirk("market_raw_as_wav", 0.5,
          "a market pcm_*/ulaw_8000/alaw_8000 result is served inside a RIFF/WAVE header "
          "(.wav) instead of bare samples",
          "not documented either way for the market (kie re-hosts the file); ElevenLabs "
          "direct documents bare samples and always gets them"),
    Quirk("aimlapi_generation_id", 0.5,
          "AI/ML API create answers `{generation_id}` (the rendered page's sample) instead of "
          "`{id, status}` (the example output)",
          "docs/providers.md, \"AI/ML API: Stable Audio\" (the example output and the "
          "rendered page's sample)"),
    Quirk("elevenlabs_legacy_429", 0.5,
          "a concurrency 429 has the legacy body `{detail: {status: "
          "\"too_many_concurrent_requests\"}}` instead of `concurrent_limit_exceeded`",
          "docs/providers.md, \"ElevenLabs: errors\""),
)
QUIRKS: dict[str, Quirk] = {q.name: q for q in _ALL}
FAITHFUL: dict[str, float] = {q.name: q.faithful for q in _ALL}


class QuirkError(ValueError):
    """A quirk spec that cannot be parsed; its text is the message a user reads."""


def parse_quirks(spec: str) -> dict[str, float]:
    """`all` (the faithful defaults), `none`, and `NAME=P` items applied left to right.

    `none,market_error_status=1` is one quirk alone; `market_raw_as_wav=0` is the
    faithful mode without it. A bare NAME means NAME=1.
    """
    out = dict(FAITHFUL)
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if item in ("all", "faithful"):
            out = dict(FAITHFUL)
            continue
        if item == "none":
            out = dict.fromkeys(FAITHFUL, 0.0)
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if name not in QUIRKS:
            raise QuirkError(f"quirk {name!r}: expected all, none or one of {', '.join(QUIRKS)}")
        try:
            rate = float(value) if sep else 1.0
        except ValueError:
            raise QuirkError(f"quirk {item!r}: expected NAME=PROBABILITY") from None
        if not 0 <= rate <= 1:
            raise QuirkError(f"quirk {item!r}: probability must be within [0, 1]")
        out[name] = rate
    return out


def describe(rates: dict[str, float]) -> str:
    """The spec that gives `rates` back: `all` when faithful, else the differences."""
    changed = [f"{name}={rates.get(name, 0.0):g}" for name in QUIRKS
               if rates.get(name, 0.0) != FAITHFUL[name]]
    return ",".join(["all", *changed]) if changed else "all"
