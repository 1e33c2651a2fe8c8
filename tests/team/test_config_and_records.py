"""Configuration of the remote cache and its record format: no server needed."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from runner.errors import ManifestInvalid, UsageError
from runner.manifest.load import load_pipeline
from runner.team.config import Mode, parse_url, resolve
from runner.team.records import INLINE_MAX_BYTES, Record, RecordInvalid

KEYS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "very-secret-value"}
DIGEST = "a" * 64


def manifest(tmp_path: Path, remote: str | None) -> Path:
    line = f"remote_cache: {remote}\n" if remote is not None else ""
    path = tmp_path / "t.yaml"
    path.write_text("version: 1\nname: t\n" + line + "jobs:\n  - id: door\n"
                    "    model: elevenlabs/sound-effect-v2\n    input: {text: Door}\n")
    return path


@pytest.mark.parametrize(("url", "bucket", "prefix"), [
    ("s3://team-cache", "team-cache", ""),
    ("s3://team-cache/", "team-cache", ""),
    ("s3://team.cache-1/studio/game//sfx/", "team.cache-1", "studio/game/sfx"),
])
def test_urls(url: str, bucket: str, prefix: str) -> None:
    assert parse_url(url, "X") == (bucket, prefix)


@pytest.mark.parametrize("url", ["http://host/bucket", "s3://", "s3://Upper/x", "s3://ab",
                                 "team-cache/prefix"])
def test_a_bad_url_says_what_is_expected_and_where_it_came_from(url: str) -> None:
    with pytest.raises(UsageError, match=r"^RUNNER_REMOTE_CACHE: expected s3://BUCKET/PREFIX"):
        resolve(None, {"RUNNER_REMOTE_CACHE": url, **KEYS})


def test_the_environment_wins_over_the_manifest_and_the_option_over_both(
        tmp_path: Path) -> None:
    pipeline = load_pipeline(manifest(tmp_path, "s3://from-manifest/team"), {})
    config = resolve(pipeline, KEYS)
    assert config is not None and (config.bucket, config.prefix) == ("from-manifest", "team")
    assert config.mode is Mode.READWRITE and config.endpoint is None
    assert config.region == "us-east-1"
    env = {**KEYS, "RUNNER_REMOTE_CACHE": "s3://from-env/x", "AWS_ENDPOINT_URL":
           "http://127.0.0.1:9000/", "AWS_DEFAULT_REGION": "eu-west-3"}
    config = resolve(pipeline, env)
    assert config is not None and config.url == "s3://from-env/x"
    assert config.endpoint == "http://127.0.0.1:9000" and config.region == "eu-west-3"
    config = resolve(pipeline, env, url="s3://from-option")
    assert config is not None and config.url == "s3://from-option"


def test_modes(tmp_path: Path) -> None:
    env = {**KEYS, "RUNNER_REMOTE_CACHE": "s3://team-cache/x"}
    assert resolve(None, env, mode="off") is None
    read = resolve(None, env, mode="read")
    assert read is not None and read.mode.reads and not read.mode.writes
    assert resolve(None, {**env, "RUNNER_REMOTE_CACHE_MODE": "off"}) is None
    config = resolve(None, {**env, "RUNNER_REMOTE_CACHE_MODE": "off"}, mode="readwrite")
    assert config is not None and config.mode.writes  # the option wins
    assert resolve(None, KEYS) is None  # nothing configured: nothing to do
    with pytest.raises(UsageError, match="remote cache mode 'read' needs a remote cache"):
        resolve(None, KEYS, mode="read")
    with pytest.raises(UsageError, match="RUNNER_REMOTE_CACHE_MODE: expected one of read, "
                                         "readwrite, off; not 'sometimes'"):
        resolve(None, {**env, "RUNNER_REMOTE_CACHE_MODE": "sometimes"})


def test_missing_credentials_are_named_and_the_secret_is_never_shown() -> None:
    with pytest.raises(UsageError, match="no credentials: set AWS_ACCESS_KEY_ID and "
                                         "AWS_SECRET_ACCESS_KEY"):
        resolve(None, {"RUNNER_REMOTE_CACHE": "s3://team-cache"})
    config = resolve(None, {"RUNNER_REMOTE_CACHE": "s3://team-cache", **KEYS,
                            "AWS_SESSION_TOKEN": "token-value"})
    assert config is not None and config.session_token == "token-value"
    assert "very-secret-value" not in repr(config) and "token-value" not in repr(config)


def test_the_manifest_key_is_checked_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ManifestInvalid) as caught:
        load_pipeline(manifest(tmp_path, "http://not-s3/bucket"), {})
    [problem] = caught.value.problems
    assert (problem.line, problem.path) == (3, "$.remote_cache")
    assert "http://not-s3/bucket" in problem.message


def _record(data: bytes, **changes: object) -> Record:
    fields: dict[str, object] = {
        "key": "k" * 64, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
        "ext": "mp3", "created_at": "2026-12-01T10:00:00Z", "recorded_at":
        "2026-12-01T10:00:05Z", "format": "mp3_44100_128", "provider": "kie",
        "model": "elevenlabs/sound-effect-v2", "job": "door", "task_id": "task_1",
        "credits": 1.2, "payload": {"z": 1, "a": [1, 2]},
        "inline": data if len(data) <= INLINE_MAX_BYTES else None}
    fields.update(changes)
    return Record(**fields)  # type: ignore[arg-type]


def test_a_record_reads_back_as_written_keys_in_their_order() -> None:
    record = _record(b"ID3 tiny take")
    back = Record.parse(record.to_bytes(), "k" * 64)
    assert back == record and list(back.payload or {}) == ["z", "a"]
    fields = back.asset_fields()
    made = dt.datetime(2026, 12, 1, 10, 0, 0, tzinfo=dt.UTC).timestamp()
    assert fields["created_at"] == made and fields["task_id"] == "task_1"


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "unreadable"),
    (b'{"layout": "v2"}', "not a record of layout v1"),
    (b'{"layout": "v1", "key": "x"}', "unreadable"),
])
def test_a_damaged_record_is_invalid(body: bytes, reason: str) -> None:
    with pytest.raises(RecordInvalid, match=reason):
        Record.parse(body, "k" * 64)


def test_a_record_is_checked_against_its_request_and_its_inline_bytes() -> None:
    record = _record(b"ID3 tiny take")
    with pytest.raises(RecordInvalid, match="record of another request"):
        Record.parse(record.to_bytes(), "j" * 64)
    tampered = _record(b"ID3 tiny take", inline=b"ID3 tiny tak3")
    with pytest.raises(RecordInvalid, match="inline bytes do not match its digest"):
        Record.parse(tampered.to_bytes(), "k" * 64)
    with pytest.raises(RecordInvalid, match="digest, size or extension is malformed"):
        Record.parse(_record(b"x", sha256="../../etc").to_bytes(), "k" * 64)


def test_only_small_results_travel_inline() -> None:
    from runner.store.journal import AssetRow

    def of(size: int) -> Record:
        data = b"\xff" * size
        asset = AssetRow("k" * 64, hashlib.sha256(data).hexdigest(), size, "mp3", None, None,
                         None, None, None, 1764583200.0, None)
        return Record.of(asset, job="j", provider="kie", model="m", fmt="f", data=data,
                         now_s=1764583200.0)

    assert of(INLINE_MAX_BYTES).inline is not None
    assert of(INLINE_MAX_BYTES + 1).inline is None
