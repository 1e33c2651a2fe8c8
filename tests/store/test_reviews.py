"""The review file: its lines, newest-wins, and two reviewers' files merged by real git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runner.errors import StoreError
from runner.store.lockfile import LockEntry
from runner.store.reviews import Decision, Mark, Take, parse_review, read_review, record

A = Take("a" * 64, "task_a")
B = Take("b" * 64, "task_b")


def entry(take: Take, raw: str | None = None) -> LockEntry:
    return LockEntry(key="k", provider="kie", model="m", output="o.mp3",
                     sha256=raw or take.sha256, size=1, created_at="2026-01-01T00:00:00Z",
                     task_id=take.task, raw={"key": "r", "sha256": take.sha256} if raw else None)


def test_lines_are_sorted_and_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "p.review.jsonl"
    record(path, "p", [Mark("door#2", B, "2026-12-03T10:00:01.000Z", Decision.REJECTED,
                            note="hinge\ttoo shrill", by="ana")])
    record(path, "p", [Mark("door#1", A, "2026-12-03T10:00:02.000Z", Decision.APPROVED,
                            by="ana"),
                       Mark("door", A, "2026-12-03T10:00:02.000Z", pick=1, by="ana")])
    lines = path.read_text().splitlines()
    assert lines[0] == '{"review": 1, "pipeline": "p"}'
    assert [line.split('"')[3] for line in lines[1:]] == ["door", "door#1", "door#2"]
    assert lines[3] == ('{"job": "door#2", "decision": "rejected", "note": "hinge\\ttoo shrill", '
                        f'"take": "{"b" * 64}", "task": "task_b", "by": "ana", '
                        '"at": "2026-12-03T10:00:01.000Z"}')
    assert not [p for p in tmp_path.iterdir() if p.name != path.name]  # no temp file left
    review = read_review(path)
    assert review.approved("door#1", entry(A)) and review.rejected("door#2", entry(B))
    assert review.pick("door") is not None and review.pick("door").pick == 1  # type: ignore


def test_a_decision_holds_for_its_take_only(tmp_path: Path) -> None:
    path = tmp_path / "r.review.jsonl"
    record(path, "p", [Mark("x", A, "2026-12-03T10:00:00.000Z", Decision.REJECTED, note="no")])
    review = read_review(path)
    assert review.rejected("x", entry(A))
    assert not review.rejected("x", entry(B))  # the take was replaced: unreviewed
    assert review.earlier("x", entry(B)) is not None
    # Same bytes, another task: a provider answered again with identical audio.
    assert not review.rejected("x", entry(Take(A.sha256, "task_new")))
    # A post-processed job is judged by the provider's take behind its file.
    assert review.rejected("x", entry(A, raw="c" * 64))


def test_the_newest_line_wins_and_clearing_is_a_line(tmp_path: Path) -> None:
    path = tmp_path / "r.review.jsonl"
    record(path, "p", [Mark("x", A, "2026-12-03T10:00:05.000Z", Decision.APPROVED)])
    record(path, "p", [Mark("x", A, "2026-12-03T10:00:01.000Z", Decision.REJECTED)])  # older
    assert read_review(path).approved("x", entry(A))
    record(path, "p", [Mark("x", A, "2026-12-03T10:00:09.000Z", Decision.UNREVIEWED)])
    review = read_review(path)
    assert review.decision("x", entry(A)) is None
    assert '"decision": "unreviewed"' in path.read_text()


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "r.review.jsonl:2: not a JSON line"),
    ('{"job": "x", "take": "a", "at": "t", "decision": "maybe"}', "unknown decision 'maybe'"),
    ('{"job": "x", "take": "a", "at": "t"}', "either a decision or a pick"),
    ('{"job": "x", "at": "t", "decision": "approved"}', "expected a decision with job, take"),
    ('{"job": "x", "take": "a", "at": "t", "pick": -1}', "pick must be a take number"),
    ("<<<<<<< HEAD", "a git conflict marker"),
    ('{"review": 9}', "review file version 9"),
])
def test_a_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "r.review.jsonl"
    path.write_text('{"review": 1, "pipeline": "p"}\n' + line + "\n")
    with pytest.raises(StoreError, match=message):
        read_review(path)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_two_reviewers_files_merge_in_git(tmp_path: Path) -> None:
    """Ana and Ben review different jobs (and both the same one) on two branches; with
    `merge=union` git merges the files without a conflict, and the newest decision wins."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, text=True,
                              capture_output=True).stdout

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.invalid")
    git("config", "user.name", "t")
    (tmp_path / ".gitattributes").write_text("*.review.jsonl merge=union\n")
    path = tmp_path / "p.review.jsonl"
    record(path, "p", [Mark("m", A, "2026-12-03T09:00:00.000Z", Decision.APPROVED, by="ana")])
    git("add", ".")
    git("commit", "-qm", "base")
    git("checkout", "-qb", "ben")
    record(path, "p", [Mark("b", B, "2026-12-03T10:00:00.000Z", Decision.REJECTED, by="ben",
                            note="thin"),
                       Mark("m", A, "2026-12-03T10:00:01.000Z", Decision.REJECTED, by="ben")])
    git("commit", "-qam", "ben")
    git("checkout", "-q", "main")
    record(path, "p", [Mark("a", A, "2026-12-03T11:00:00.000Z", Decision.APPROVED, by="ana"),
                       Mark("c", B, "2026-12-03T11:00:00.000Z", Decision.APPROVED, by="ana"),
                       Mark("m", A, "2026-12-03T11:00:02.000Z", Decision.UNREVIEWED, by="ana")])
    git("commit", "-qam", "ana")
    git("merge", "-q", "ben", "-m", "merge")  # raises on a conflict
    text = path.read_text()
    assert "<<<<<<<" not in text
    review = read_review(path)
    assert review.approved("a", entry(A)) and review.approved("c", entry(B))
    assert review.rejected("b", entry(B))
    assert review.decision("m", entry(A)) is None  # Ana's clearing is newer than Ben's reject
    assert review.superseded >= 1  # both sides' lines for m were read
    record(path, "p", [])  # the next write keeps one line per job again
    assert len(path.read_text().splitlines()) == 1 + 4


def test_parse_keeps_unknown_pipeline_header() -> None:
    review = parse_review('{"review": 1, "pipeline": "x"}\n\n', Path("x.review.jsonl"))
    assert review.pipeline == "x" and not review.marks
