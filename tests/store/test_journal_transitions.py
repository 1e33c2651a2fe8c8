"""The journal's task rows move only as `TRANSITIONS` allows: every allowed move is
written, every other one refused with nothing changed, and every state is one the
engine writes."""

from __future__ import annotations

import ast
import itertools
import sqlite3
from collections import deque
from pathlib import Path

import pytest

import runner
from runner.errors import StoreError
from runner.store.journal import TRANSITIONS, Journal, TaskRowState

S = TaskRowState
ALLOWED = [(src, dst) for src, nexts in TRANSITIONS.items() for dst in sorted(nexts)]
FORBIDDEN = [(src, dst) for src, dst in itertools.product(TaskRowState, TaskRowState)
             if dst not in TRANSITIONS[src]]


def path_to(state: TaskRowState) -> list[TaskRowState]:
    """The shortest run of allowed moves from a new row (`submitting`) to `state`."""
    paths = {S.SUBMITTING: [S.SUBMITTING]}
    queue = deque([S.SUBMITTING])
    while queue:
        here = queue.popleft()
        for there in sorted(TRANSITIONS[here]):
            if there not in paths:
                paths[there] = [*paths[here], there]
                queue.append(there)
    return paths[state]


def row_in(journal: Journal, state: TaskRowState) -> int:
    row_id = journal.begin_submit("key", "job", "kie", 0)
    for step in path_to(state)[1:]:
        journal.set_task(row_id, step, task_id="task-1", error=f"to {step}")
    return row_id


def state_of(journal: Journal, row_id: int) -> tuple[str, str | None]:
    return journal.db.execute("SELECT state, error FROM tasks WHERE id = ?", (row_id,)).fetchone()


def test_every_state_is_reachable_from_a_new_row() -> None:
    assert {path_to(state)[-1] for state in TaskRowState} == set(TaskRowState)


@pytest.mark.parametrize(("src", "dst"), ALLOWED, ids=lambda s: s.value)
def test_every_allowed_move_is_written(tmp_path: Path, src: TaskRowState,
                                       dst: TaskRowState) -> None:
    with Journal(tmp_path / "journal.sqlite") as journal:
        row_id = row_in(journal, src)
        journal.set_task(row_id, dst, error="moved")
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        assert state_of(journal, row_id) == (dst.value, "moved")
        live = journal.live_task("key")
        assert (live is not None and live.id == row_id) is dst.alive


@pytest.mark.parametrize(("src", "dst"), FORBIDDEN, ids=lambda s: s.value)
def test_every_other_move_is_refused_and_changes_nothing(tmp_path: Path, src: TaskRowState,
                                                         dst: TaskRowState) -> None:
    with Journal(tmp_path / "journal.sqlite") as journal:
        row_id = row_in(journal, src)
        before = state_of(journal, row_id)
        with pytest.raises(StoreError, match=f"cannot move from '{src.value}' to "
                                             f"'{dst.value}'"):
            journal.set_task(row_id, dst, task_id="other", error="must not be written")
        assert state_of(journal, row_id) == before


def test_a_row_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.sqlite") as journal, \
            pytest.raises(StoreError, match="no task row 42"):
        journal.set_task(42, S.FAILED, error="x")


def test_the_live_states_are_those_that_may_still_move() -> None:
    # A live task's request is never sent again: submitting, submitted and uncertain.
    assert {s for s in TaskRowState if s.alive} == {S.SUBMITTING, S.SUBMITTED, S.UNCERTAIN}


def test_every_state_is_written_by_the_runner() -> None:
    """No state only the enum knows: each is the target of a `set_task` call in the
    package (or, `submitting`, what `begin_submit` writes)."""
    written = {S.SUBMITTING}
    for path in Path(runner.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "set_task" and len(node.args) >= 2:
                state = node.args[1]
                if isinstance(state, ast.Attribute) and \
                        isinstance(state.value, ast.Name) and state.value.id == "TaskRowState":
                    written.add(S[state.attr])
    assert written == set(TaskRowState)


def test_a_row_an_earlier_version_left_as_succeeded_is_collected_again(tmp_path: Path) -> None:
    """Before the state was dropped, `succeeded` meant "finished, not yet stored": such a
    row is read as `submitted` (polled again, at no cost), never as a reason to resend."""
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO tasks (key, job_id, provider, attempt, state, task_id, "
               "created_at, updated_at) VALUES ('key', 'job', 'kie', 0, 'succeeded', 't1', 1, 1)")
    db.commit()
    db.close()
    with Journal(path, readonly=True) as journal:  # `runner status` reads, never writes
        live = journal.live_task("key")
        assert live is not None and live.state is S.SUBMITTED and live.task_id == "t1"
    with Journal(path) as journal:
        live = journal.live_task("key")
        assert live is not None and live.state is S.SUBMITTED
        journal.set_task(live.id, S.MATERIALIZED)
        assert journal.live_task("key") is None
