"""Market answers the sandbox never gives, scripted with httpx.MockTransport: the tolerant
reading of documented variants (docs/providers.md, "Market API") and the less common error
shapes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from runner.catalog.models import MODELS
from runner.errors import (
    AccountRefused,
    GenerationFailed,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
    TaskUnknown,
    TransportError,
)
from runner.providers.base import Request, TaskState, TaskStatus
from runner.providers.http import USER_AGENT
from runner.providers.market import MarketAdapter

from .mock import BASE, Script, account, reply

pytestmark = pytest.mark.anyio

TTS = MODELS["elevenlabs/text-to-speech-turbo-2-5"]
KEY = "sk-mock-key-0123456789abcdef"


def record(**fields: Any) -> dict[str, Any]:
    return {"code": 200, "msg": "success",
            "data": {"taskId": "t1", "model": TTS.id, "param": "{}", **fields}}


async def status_of(*answers: Any) -> TaskStatus:
    script = Script(*answers)
    async with script.client() as client:
        return await MarketAdapter(account("kie"), KEY, client).status("t1")


async def submit_error(answer: Any) -> ProviderError:
    script = Script(answer)
    async with script.client() as client:
        with pytest.raises(ProviderError) as caught:
            await MarketAdapter(account("kie"), KEY, client).submit(
                Request("j", TTS, {"text": "hi"}))
    return caught.value


async def test_create_request_shape_and_headers() -> None:
    script = Script(reply({"code": 200, "message": "success", "data": {"taskId": "t9"}}))
    async with script.client(user_agent=False) as bare:  # no UA on the client: we add one
        market = MarketAdapter(account("apikley"), KEY, bare)
        task = await market.submit(Request("j", TTS, {"text": "hi"}, callback_url="http://cb/x"))
    assert task.task_id == "t9"
    sent = script.last
    assert (sent.method, str(sent.url)) == ("POST", f"{BASE}/api/v1/jobs/createTask")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["user-agent"] == USER_AGENT
    assert json.loads(sent.content) == {"model": TTS.id, "input": {"text": "hi"},
                                        "callBackUrl": "http://cb/x"}


async def test_poll_request_shape() -> None:
    script = Script(reply(record(state="waiting")))
    async with script.client() as client:
        await MarketAdapter(account("kie"), KEY, client).status("t 1&x")
    assert script.last.url.params["taskId"] == "t 1&x"
    assert script.last.headers["user-agent"] == USER_AGENT


@pytest.mark.parametrize("field", ["msg", "message"])
async def test_message_field_either_name(field: str) -> None:
    error = await submit_error(reply({"code": 402, field: "Credits insufficient"}))
    assert isinstance(error, AccountRefused) and "Credits insufficient" in str(error)


async def test_result_json_as_an_object_with_both_keys() -> None:
    status = await status_of(reply(record(
        state="success", resultJson={"resultUrls": ["https://f/a.mp3"], "resultObject": None},
        consumeCredits=12, createTime=1_000, completeTime=4_500)))
    assert status.state is TaskState.SUCCEEDED and status.result is not None
    assert status.result.urls == ("https://f/a.mp3",) and status.result.payload is None
    assert status.result.credits == 12 and status.run_time_s == 3.5


async def test_only_result_object() -> None:
    transcript = {"language_code": "eng", "text": "Ever tried it?", "words": []}
    status = await status_of(reply(record(
        state="success", resultJson=json.dumps({"resultObject": transcript}), costTime=2500)))
    assert status.result is not None and status.result.urls == ()
    assert status.result.payload == transcript and status.run_time_s == 2.5


async def test_top_level_text_and_transcripts() -> None:
    status = await status_of(reply(record(
        state="success", resultJson=json.dumps({"text": "Hello.", "words": [{"text": "Hello"}]}))))
    assert status.result is not None
    assert status.result.payload == {"text": "Hello.", "words": [{"text": "Hello"}]}
    status = await status_of(reply(record(
        state="success", resultJson=json.dumps({"transcripts": [{"text": "a"}]}))))
    assert status.result is not None and status.result.payload == {"transcripts": [{"text": "a"}]}


async def test_transcript_only_as_a_url() -> None:
    status = await status_of(reply(record(
        state="success", resultJson=json.dumps({"resultUrls": ["https://f/t.json"]}))))
    assert status.result is not None and status.result.urls == ("https://f/t.json",)


@pytest.mark.parametrize(("word", "state"), [
    ("processing", TaskState.PENDING), ("queuing", TaskState.PENDING),
    ("generating", TaskState.PENDING), ("", TaskState.PENDING), ("failed", TaskState.FAILED),
    ("error", TaskState.FAILED), ("FAIL", TaskState.FAILED),
])
async def test_states(word: str, state: TaskState) -> None:
    status = await status_of(reply(record(state=word, failCode="GENERATION_FAILED",
                                          failMsg="boom")))
    assert status.state is state and status.provider_state == (word.lower() or "unknown")
    if state is TaskState.FAILED:
        assert (status.fail_code, status.fail_message) == ("GENERATION_FAILED", "boom")


async def test_failed_record_under_body_code_501() -> None:
    status = await status_of(reply({"code": 501, "msg": "Playground task failed.",
                                    "data": {"taskId": "t1", "state": "fail", "failCode": None}}))
    assert status.state is TaskState.FAILED
    assert (status.fail_code, status.fail_message) == (None, "Playground task failed.")


async def test_success_without_a_result_yet_or_unreadable() -> None:
    with pytest.raises(ProviderUnavailable, match="no result"):
        await status_of(reply(record(state="success", resultJson="")))
    with pytest.raises(ProviderUnavailable, match="not JSON"):
        await status_of(reply(record(state="success", resultJson="{oops")))
    with pytest.raises(ProviderUnavailable, match="without a task record"):
        await status_of(reply({"code": 200, "msg": "success"}))


@pytest.mark.parametrize("answer", [
    {"code": 422, "msg": "recordInfo is null"},  # documented: created, not visible yet
    {"code": 422, "message": "recordInfo is null"},
    {"code": 200, "msg": "success", "data": None},  # the same, as a success with no record
    {"code": 404, "msg": "Task not found"},
])
async def test_no_record_of_the_task(answer: dict[str, object]) -> None:
    """The engine decides what "no record" means (a grace period after creation); the
    adapter only says it, as TaskUnknown, not as a rejected or failed request."""
    with pytest.raises(TaskUnknown, match="no record of the task"):
        await status_of(reply(answer))


async def test_another_422_is_still_a_rejection() -> None:
    with pytest.raises(RequestRejected) as raised:
        await status_of(reply({"code": 422, "msg": "taskId is required"}))
    assert not isinstance(raised.value, TaskUnknown)


@pytest.mark.parametrize(("answer", "kind", "words"), [
    (reply({"code": 500, "msg": "Server exception, please try again later"}, 500),
     ProviderUnavailable, "Server exception"),
    (reply({"code": 500, "msg": "This voice is not within the range of allowed options"}),
     RequestRejected, "allowed options"),
    (reply({"code": 500, "msg": "Internal error"}), ProviderUnavailable, "server error"),
    (reply({"code": 501, "msg": "Generation Failed"}), GenerationFailed, "generation failed"),
    (reply({"code": 505, "msg": "Feature disabled"}), RequestRejected, "feature disabled"),
    (reply({"code": 455, "msg": "maintenance"}), ProviderUnavailable, "maintenance"),
    (reply({"code": 400, "msg": "bad"}), RequestRejected, "bad"),
    (reply({"code": 403, "msg": "IP not in whitelist"}), AccountRefused, "whitelist"),
    (reply(text="<html><body>502 Bad Gateway</body></html>", status=502), ProviderUnavailable,
     "502 Bad Gateway"),
    (reply(text="error code: 1010", status=403), RequestRejected, "User-Agent"),
    (reply({"code": 433, "msg": "odd"}), RequestRejected, "error code 433"),
])
async def test_error_table(answer: Any, kind: type[ProviderError], words: str) -> None:
    error = await submit_error(answer)
    assert type(error) is kind and words in str(error)


async def test_cloudflare_block_is_not_an_auth_failure() -> None:
    error = await submit_error(reply(text="error code: 1010", status=403))
    assert not isinstance(error, AccountRefused)
    assert "not checked" in str(error) and error.status == 403


async def test_retry_after_seconds_and_date() -> None:
    error = await submit_error(reply({"code": 429, "msg": "slow down"}, 429,
                                     {"Retry-After": "7"}))
    assert isinstance(error, RateLimited) and error.retry_after_s == 7.0
    later = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 30, UTC)
    error = await submit_error(reply({"code": 429, "msg": "slow down"}, 429,
                                     {"Retry-After": format_datetime(later, usegmt=True)}))
    assert error.retry_after_s is not None and 25 < error.retry_after_s <= 30


async def test_unreadable_create_answers_mean_the_task_may_exist() -> None:
    for answer in (reply(text="<html>ok</html>"), reply({"code": 200, "msg": "ok", "data": {}})):
        error = await submit_error(answer)
        assert isinstance(error, TransportError) and error.request_sent is True


async def test_upload_shapes(tmp_path: Path) -> None:
    local = tmp_path / "a.mp3"
    local.write_bytes(b"ID3 fake mp3")
    script = Script(reply({"success": True, "code": 200, "msg": "ok",
                           "data": {"fileId": "f", "fileUrl": "https://files/a.mp3"}}),
                    reply({"success": True, "code": 200, "msg": "ok",
                           "data": {"downloadUrl": "https://files/b.mp3"}}),
                    reply({"success": False, "code": 400, "msg": "uploadPath is required"}, 400))
    async with script.client() as client:
        market = MarketAdapter(account("kie"), KEY, client)
        assert await market.upload(local, "a-1.mp3") == "https://files/a.mp3"  # fileUrl fallback
        sent = script.last
        assert str(sent.url) == f"{BASE}/upload/api/file-stream-upload"
        body = sent.content
        assert b'name="uploadPath"\r\n\r\nrunner-uploads' in body
        # A name of its own per upload (a reused name overwrites): a random prefix.
        named = re.search(rb'name="fileName"\r\n\r\n([0-9a-f]{16})-a-1\.mp3\r\n', body)
        assert named is not None
        assert b'name="file"; filename="' + named[1] + b'-a-1.mp3"' in body
        assert b"ID3 fake mp3" in body
        await market.upload(local, "a-1.mp3")
        again = re.search(rb'name="fileName"\r\n\r\n([0-9a-f]{16})-a-1', script.last.content)
        assert again is not None and again[1] != named[1]
        with pytest.raises(RequestRejected, match="uploadPath is required"):
            await market.upload(local, "a-1.mp3")


@pytest.mark.parametrize(("answer", "expected"), [
    (reply({"code": 200, "msg": "success", "data": "https://dl/a.mp3?e=1"}), "https://dl/a.mp3?e=1"),
    (reply({"code": 422, "msg": "external URL"}), None),
    (reply({"code": 404, "msg": "nope"}, 404), None),
    (reply(text="Not Found", status=404), None),
])
async def test_refresh_url(answer: Any, expected: str | None) -> None:
    script = Script(answer)
    async with script.client() as client:
        assert await MarketAdapter(account("kie"), KEY, client).refresh_url("https://f/a") == \
            expected
    assert json.loads(script.last.content) == {"url": "https://f/a"}
