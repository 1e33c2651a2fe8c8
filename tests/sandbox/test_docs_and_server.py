"""Doc examples round-trip; introspection; the CLI; 500 open connections."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys

import httpx
import pytest

from runner.sandbox import SandboxProcess, SandboxServer, provider_urls
from tests.sandbox.helpers import KEY, XI

_TTS_EXAMPLE = {"model": "elevenlabs/text-to-speech-turbo-2-5",
                "callBackUrl": "https://your-domain.com/api/callback",
                "input": {"text": "Unlock powerful API with Kie.ai! Affordable, scalable APl "
                          "integration, free trial playground, and secure, reliable performance.",
                          "voice": "Rachel", "stability": 0.5, "similarity_boost": 0.75,
                          "style": 0, "speed": 1, "timestamps": False}}
_SFX_APIKLEY = {"model": "elevenlabs/sound-effect-v2",
                "callBackUrl": "https://your-domain.com/api/callback",
                "input": {"text": "", "loop": False, "prompt_influence": 0.3,
                          "output_format": "mp3_44100_128"}}
_STT_EXAMPLE = {"model": "elevenlabs/speech-to-text",
                "callBackUrl": "https://your-domain.com/api/callback",
                "input": {"audio_url": "https://file.aiquickdraw.com/custom-page/akr/section-images/"
                          "1757157053357tn37vxc8.mp3", "language_code": "", "tag_audio_events": True,
                          "diarize": True}}
# recordInfo example keys (kie.ai's Sound Effect V2 markdown) and the callback examples' keys
# (docs/providers.md, "Market API: task details and states", "Market API: callbacks").
_RECORD_KEYS = {"taskId", "model", "state", "param", "resultJson", "failCode", "failMsg",
                "costTime", "completeTime", "createTime"}
_CALLBACK_KEYS = {"completeTime", "consumeCredits", "costTime", "createTime", "model", "param",
                  "remainedCredits", "resultJson", "state", "taskId", "updateTime"}


@pytest.mark.parametrize(("prefix", "example", "final"), [
    ("", _TTS_EXAMPLE, "success"), ("/apikley", _SFX_APIKLEY, "success"),
    ("/apikley", _STT_EXAMPLE, "fail")])  # the example's URL is not on loopback
def test_market_examples_round_trip(sandbox: SandboxServer, prefix: str, example: dict[str, object],
                                    final: str) -> None:
    created = httpx.post(f"{sandbox.url}{prefix}/api/v1/jobs/createTask", headers=KEY,
                         json=example).json()
    assert created["code"] == 200 and set(created["data"]) >= {"taskId"}
    info = httpx.get(f"{sandbox.url}{prefix}/api/v1/jobs/recordInfo", headers=KEY,
                     params={"taskId": created["data"]["taskId"]}).json()
    assert _RECORD_KEYS <= set(info["data"]) and info["data"]["state"] == final
    assert json.loads(info["data"]["param"]) == example
    stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["callbacks"].get("refused_non_loopback", 0) <= 1  # never contacted the internet


def test_invalid_doc_examples_are_refused(sandbox: SandboxServer) -> None:
    # kie.ai's Sound Effect V2 markdown asks for 42 s (range 0.5-22); the kie.ai page omits
    # `text` (docs/providers.md, "Market API: sound-effect-v2").
    for inputs in ({"text": "Enter your prompt here...", "loop": False, "duration_seconds": 42,
                    "prompt_influence": 0.3, "output_format": "mp3_44100_128"},
                   {"loop": False, "prompt_influence": 0.3, "output_format": "mp3_44100_128"}):
        answer = httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY,
                            json={"model": "elevenlabs/sound-effect-v2", "input": inputs}).json()
        assert answer["code"] == 422


def test_callback_examples_shape(sandbox: SandboxServer) -> None:
    from tests.sandbox.helpers import CallbackReceiver

    receiver = CallbackReceiver()
    try:
        sandbox.config.faults = {"501": 0.5}
        sandbox.config.seed = 3
        for _ in range(6):
            httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY,
                       json={**_TTS_EXAMPLE, "callBackUrl": receiver.url})
        received = receiver.wait(6)
    finally:
        receiver.close()
    codes = {body["code"] for body, _ in received}
    assert codes == {200, 501}
    for body, _ in received:
        keys = set(body["data"])
        if body["code"] == 200:
            assert _CALLBACK_KEYS <= keys
        else:
            assert (_CALLBACK_KEYS - {"resultJson"}) | {"failCode", "failMsg"} <= keys


def test_aimlapi_and_elevenlabs_examples(sandbox: SandboxServer) -> None:
    sandbox.config.update({"quirks": "aimlapi_generation_id=0"})  # the example output's shape
    created = httpx.post(f"{sandbox.url}/v2/generate/audio", headers=KEY, json={
        "model": "stable-audio", "prompt": "lo-fi pop hip-hop ambient music", "steps": 100,
        "seconds_total": 10})
    assert created.status_code == 201 and set(created.json()) == {"id", "status"}
    fetched = httpx.get(f"{sandbox.url}/v2/generate/audio", headers=KEY,
                        params={"generation_id": created.json()["id"]}).json()
    assert {"id", "status", "audio_file", "error"} <= set(fetched)
    assert {"url", "content_type", "file_name", "file_size"} == set(fetched["audio_file"])
    speech = httpx.post(f"{sandbox.url}/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb?output_format="
                        "mp3_44100_128", headers=XI, json={
                            "text": "The first move is what sets everything in motion.",
                            "model_id": "eleven_multilingual_v2"})
    effect = httpx.post(f"{sandbox.url}/v1/sound-generation", headers=XI, json={
        "text": "Spacious braam suitable for high-impact movie trailer moments"})
    assert speech.status_code == effect.status_code == 200


def test_introspection(sandbox: SandboxServer) -> None:
    httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY, json=_SFX_APIKLEY)
    stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["tasks"]["by_model"] == {"elevenlabs/sound-effect-v2": 1}
    assert len(stats["tasks"]["by_input_hash"]) == 1
    changed = httpx.post(f"{sandbox.url}/_sandbox/config", json={
        "latency": "stable-audio=1-2", "rate_limit": "20/10", "faults": "429=0.5",
        "api_keys": ["secret-key"], "credits": 50}).json()
    assert changed["rate_limit"] == "20/10" and changed["latency"] == {"stable-audio": "1-2"}
    assert "secret-key" not in json.dumps(changed) and sandbox.config.credits == 50
    bad = httpx.post(f"{sandbox.url}/_sandbox/config", json={"faults": "404=1"})
    assert bad.status_code == 400 and "404" in bad.json()["error"]
    assert httpx.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 5}).json()[
        "offset_s"] == 5
    assert httpx.post(f"{sandbox.url}/_sandbox/reset").json() == {"reset": True}
    assert httpx.get(f"{sandbox.url}/_sandbox/stats").json()["tasks"]["total"] == 0
    document = httpx.get(f"{sandbox.url}/_sandbox/openapi.json").json()
    assert "/api/v1/jobs/createTask" in document["paths"] and document["openapi"].startswith("3.")
    assert set(provider_urls(sandbox.url)) == {"kie", "apikley", "aimlapi", "elevenlabs"}


def test_serve_refuses_non_loopback_and_bad_knobs() -> None:
    for args, needle in ((["--host", "0.0.0.0"], "refusing"), (["--faults", "boom=1"], "boom")):
        proc = subprocess.run([sys.executable, "-m", "runner", "sandbox", "serve", *args],
                              capture_output=True, text=True, timeout=30, check=False)
        assert proc.returncode == 2 and needle in proc.stderr


def test_process_and_500_open_connections() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 2048), hard), hard))
    with SandboxProcess(["--latency", "0"]) as url:
        port = int(url.rsplit(":", 1)[1])

        async def scenario() -> list[int]:
            conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(500)]
            for _, writer in conns:  # half a request each: the server must hold them all
                writer.write(b"GET /api/v1/chat/credit HTTP/1.1\r\nHost: x\r\n")
            await asyncio.gather(*(w.drain() for _, w in conns))
            async with httpx.AsyncClient() as client:
                fresh = await client.get(f"{url}/api/v1/chat/credit", headers=KEY)
            for _, writer in conns:
                writer.write(b"Authorization: Bearer k\r\n\r\n")
            statuses = [fresh.status_code]
            for reader, writer in conns:
                statuses.append(int((await reader.readline()).split()[1]))
                writer.close()
            return statuses

        statuses = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    assert statuses == [200] * 501


def test_the_behaviour_table_names_real_tests() -> None:
    """docs/sandbox.md's table of documented behaviours cites tests: each one exists, and
    each quirk it names is a quirk, so the table cannot drift from the suite."""
    import ast
    import re
    from pathlib import Path

    from runner.sandbox.quirks import QUIRKS

    root = Path(__file__).parents[2]
    doc = (root / "docs" / "sandbox.md").read_text()
    table = doc[doc.index("| behaviour | documented by"):doc.index("## Answers in detail")]
    tests = {path.relative_to(root / "tests").as_posix(): path
             for path in (root / "tests").rglob("test_*.py")}
    cited = re.findall(r"`([\w/]+\.py)(?:::(\w+))?(?:\[([\w, /-]+)\])?`", table)
    assert len(cited) > 60
    for file, function, param in cited:
        if not file.rpartition("/")[2].startswith("test_"):
            continue  # a module of the sandbox, not a test
        matches = [p for rel, p in tests.items() if rel == file or rel.endswith("/" + file)]
        assert len(matches) == 1, f"{file} is not one test file under tests/"
        if function:
            names = {n.name for n in ast.walk(ast.parse(matches[0].read_text()))
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            assert function in names, f"{file}::{function} does not exist"
        if param and file.endswith(("test_quirks.py", "test_faithful.py")) and not function:
            assert param in QUIRKS, f"{file}[{param}]: not a quirk"
    named = set(re.findall(r"quirk `(\w+)`", table))
    assert named == set(QUIRKS), named ^ set(QUIRKS)
