"""The journal: every request's fate, committed before the next request is sent.

SQLite in WAL mode under `<output_dir>/.runner/journal.sqlite`. A task row
moves submitting → submitted (task id) → materialized (the result stored), or
to failed / uncertain / abandoned: every move it may make is in `TRANSITIONS`,
and `Journal.set_task` refuses any other. Rows are keyed by the job's cache
key (what was asked), so a resumed run finds the task of the same request
whatever the job is called now, and never sends that request again while a
task for it lives.

Durability: `synchronous=NORMAL` in WAL mode survives the death of the process
(kill -9 at any moment loses no committed transition), which is the failure
the tests exercise; an operating-system crash or power loss may lose the last
transitions. Set RUNNER_JOURNAL_SYNC=FULL to fsync every commit at a cost of
throughput.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self

from runner.errors import StoreError
from runner.store.atomic import full_sync

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    job_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    task_id TEXT,
    result TEXT,
    error TEXT,
    credits REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    run_id INTEGER
);
CREATE INDEX IF NOT EXISTS tasks_by_key ON tasks (key, id);
CREATE TABLE IF NOT EXISTS assets (
    key TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    ext TEXT NOT NULL,
    duration_s REAL,
    credits REAL,
    task_id TEXT,
    result_url TEXT,
    payload TEXT,
    created_at REAL NOT NULL,
    run_id INTEGER
);
CREATE TABLE IF NOT EXISTS outputs (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outcomes (
    run_id INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    message TEXT,
    task_id TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, job_id)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    target TEXT NOT NULL,
    outcome TEXT
);
"""


# The longest a write waits for its commit (see "writing: group commit" below): a kill
# loses at most this much of the journal's record, a result stored just before it
# included, at a cost of one commit per this period when nothing else commits.
COMMIT_WITHIN_S = 1.0


class TaskRowState(StrEnum):
    SUBMITTING = "submitting"  # request about to be sent / sent, answer not recorded
    SUBMITTED = "submitted"  # the provider gave a task id: collect it, never send again
    MATERIALIZED = "materialized"  # the result is in the cache and is the key's asset
    FAILED = "failed"  # the task failed, or the request was refused (nothing to collect)
    UNCERTAIN = "uncertain"  # sent, no answer: the task may exist and be billed
    ABANDONED = "abandoned"  # a person asked for a new request (--resubmit-uncertain)

    @property
    def alive(self) -> bool:
        """A task whose request must not be sent again: one that may still move."""
        return bool(TRANSITIONS[self])


_S = TaskRowState
# Every move a task row may make; `Journal.set_task` refuses any other (a StoreError),
# so no code path can, say, bring a failed task back or forget a submitted one. A row
# starts as `submitting` (`Journal.begin_submit`); a state with nowhere to go is final.
TRANSITIONS: Mapping[TaskRowState, frozenset[TaskRowState]] = MappingProxyType({
    _S.SUBMITTING: frozenset({
        _S.SUBMITTED,  # the provider answered with a task id
        _S.MATERIALIZED,  # a synchronous provider answered with the audio itself
        _S.FAILED,  # refused: nothing was created
        _S.UNCERTAIN,  # no usable answer: the task may exist
        _S.ABANDONED,  # --resubmit-uncertain for a row a killed run left
    }),
    _S.SUBMITTED: frozenset({
        _S.SUBMITTED,  # --adopt-task names the task the row already holds
        _S.MATERIALIZED,  # the task succeeded and its result is stored
        _S.FAILED,  # the generation failed, or the provider no longer knows the task
        _S.UNCERTAIN,  # never visible at the provider within the grace period
    }),
    _S.UNCERTAIN: frozenset({
        _S.SUBMITTED,  # --adopt-task: a person found the task in the provider's log
        _S.MATERIALIZED,  # looked for again (it has a task id): found, and stored
        _S.FAILED,  # looked for again: its generation failed
        _S.UNCERTAIN,  # looked for again: still not visible
        _S.ABANDONED,  # --resubmit-uncertain
    }),
    _S.MATERIALIZED: frozenset(),
    _S.FAILED: frozenset(),
    _S.ABANDONED: frozenset(),
})
# For each state, the states a row may be in to move to it (`set_task`'s one UPDATE).
_SOURCES: Mapping[TaskRowState, tuple[str, ...]] = MappingProxyType({
    target: tuple(sorted(s.value for s, nexts in TRANSITIONS.items() if target in nexts))
    for target in TaskRowState})
# Spellings of states earlier versions wrote. `succeeded` (the task finished, its result
# not yet stored) is read as `submitted`: the task is polled again, which costs nothing.
_LEGACY_STATES = {"succeeded": TaskRowState.SUBMITTED}
# What `live_task` looks for (a read-only journal may still hold legacy spellings).
_ALIVE = (*(s.value for s in TaskRowState if s.alive),
          *(old for old, state in _LEGACY_STATES.items() if state.alive))


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: int
    key: str
    job_id: str
    provider: str
    attempt: int
    state: TaskRowState
    task_id: str | None
    result: dict[str, Any] | None
    error: str | None
    credits: float | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class AssetRow:
    key: str
    sha256: str
    size: int
    ext: str
    duration_s: float | None
    credits: float | None
    task_id: str | None
    result_url: str | None
    payload: dict[str, Any] | None
    created_at: float
    run_id: int | None


@dataclass(frozen=True, slots=True)
class JobOutcomeRow:
    run_id: int
    job_id: str
    key: str
    outcome: str  # runner.engine.retry.JobOutcome values
    message: str | None
    task_id: str | None
    at: float


def _task(row: tuple[Any, ...]) -> TaskRow:
    (id_, key, job_id, provider, attempt, state, task_id, result, error, credits,
     created_at, updated_at) = row[:12]
    return TaskRow(id_, key, job_id, provider, attempt,
                   _LEGACY_STATES.get(state) or TaskRowState(state), task_id,
                   json.loads(result) if result else None, error, credits, created_at,
                   updated_at)


def _asset(row: tuple[Any, ...]) -> AssetRow:
    (key, sha, size, ext, duration, credits, task_id, url, payload, created, run_id) = row
    return AssetRow(key, sha, size, ext, duration, credits, task_id, url,
                    json.loads(payload) if payload else None, created, run_id)


def _create(path: Path) -> None:
    """Create the journal with its tables, all at once: a temp file, then a link to its
    name. A reader (`runner status`, a test watching a run) that finds the file finds
    its tables too; created in place, the file exists a moment before them."""
    # What a creation cut short by a kill left (the writer holds the build lock, so no
    # other process is creating this journal now).
    for leftover in path.parent.glob(f".{path.name}.*.new*"):
        leftover.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # kept in the file's header
        db.executescript(SCHEMA)
    finally:
        db.close()
    try:
        os.link(tmp, path)  # never over a journal another process just made
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links
        if not path.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_TASK_COLUMNS = ("id, key, job_id, provider, attempt, state, task_id, result, error, credits, "
                 "created_at, updated_at")
_ASSET_COLUMNS = ("key, sha256, size, ext, duration_s, credits, task_id, result_url, payload, "
                  "created_at, run_id")


class Journal:
    """One build's journal. Writes are committed by `durable()` (in a run) or
    `commit()` / `close()` (elsewhere)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.exists():
                    _create(path)
                self.db = sqlite3.connect(path, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute(f"PRAGMA synchronous={'FULL' if full_sync() else 'NORMAL'}")
                self.db.executescript(SCHEMA)
                for old, state in _LEGACY_STATES.items():  # rows earlier versions wrote
                    self.db.execute("UPDATE tasks SET state = ? WHERE state = ?",
                                    (state.value, old))
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the journal ({exc})") from exc
        self.run_id: int | None = None
        # In-memory mirrors for a run's hot path (see `preload`); None: read the database.
        self._assets: dict[str, AssetRow] | None = None
        self._task_keys: set[str] | None = None
        self._group: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.failed: str | None = None  # a commit failed: nothing more can be trusted

    def preload(self) -> None:
        """Read assets and the keys that have tasks once, so that the per-job lookups of
        a large run are dictionary lookups; the write methods keep the mirrors current."""
        self._assets = self.all_assets()
        self._task_keys = {r[0] for r in self.db.execute("SELECT DISTINCT key FROM tasks")}

    def has_tasks(self, key: str) -> bool:
        """Whether any request was ever journaled for this key (cheap after `preload`)."""
        if self._task_keys is not None:
            return key in self._task_keys
        return self.db.execute("SELECT 1 FROM tasks WHERE key = ? LIMIT 1",
                               (key,)).fetchone() is not None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.commit()
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing: group commit -------------------------------------------------------
    # Writes join an open transaction; `durable()` commits it, and every job that asks
    # during the same turn of the event loop shares that one commit. A job awaits
    # `durable()` before each request it sends, so "committed before the next request"
    # holds, at one WAL append per batch instead of one per write (on slow file
    # systems a commit costs ~0.1-0.2 ms; a 10,000-job run makes ~80,000 writes).
    #
    # Nothing else may wait for a request to come along: once the last request of a
    # run is sent, hours of polling and downloading would otherwise stay uncommitted,
    # and a kill would lose every result collected meanwhile. So a stored result asks
    # for a commit at the next turn (`commit_soon`), and any write is committed within
    # `COMMIT_WITHIN_S` of the transaction it opened.

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        return int(self._execute(sql, args).lastrowid or 0)

    def _execute(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        try:
            if not self.db.in_transaction:
                self.db.execute("BEGIN")
                self._arm_timer()
            return self.db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: journal write failed ({exc})") from exc

    def commit(self) -> None:
        if self.db.in_transaction:
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: journal commit failed ({exc})") from exc

    async def durable(self) -> None:
        """Return once every write made so far is committed."""
        if self.failed is not None:  # writes were lost: no request may rely on them
            raise StoreError(self.failed)
        if not self.db.in_transaction:
            return
        await asyncio.shield(self._group_future())

    def commit_soon(self) -> None:
        """Commit at the next turn of the event loop, with every write made until then
        (a result just stored: it must survive a kill, and nobody needs to wait)."""
        if self.db.in_transaction:
            self._group_future()

    def _group_future(self) -> asyncio.Future[None]:
        if self._group is None:
            loop = asyncio.get_running_loop()
            self._group = loop.create_future()
            # Retrieved here, so a failure nobody awaited is not reported as "never
            # retrieved"; the next `durable()` or `commit()` raises it (`failed`).
            self._group.add_done_callback(lambda f: f.cancelled() or f.exception())
            loop.call_soon(self._commit_group)
        return self._group

    def _commit_group(self) -> None:
        group, self._group = self._group, None
        assert group is not None
        try:
            self.commit()
        except StoreError as exc:
            self.failed = self.failed or str(exc)
            group.set_exception(exc)
        else:
            group.set_result(None)

    def _arm_timer(self) -> None:
        """Commit the transaction just opened within `COMMIT_WITHIN_S`, when a run's
        event loop is there to do it (elsewhere, `commit()` or `close()` does)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._timer is None or self._timer.cancelled():
            self._timer = loop.call_later(COMMIT_WITHIN_S, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.db.in_transaction and self._group is None:
            self._group_future()

    # --- runs ---------------------------------------------------------------------------
    def start_run(self, target: str) -> int:
        self.run_id = self._write("INSERT INTO runs (started_at, target) VALUES (?, ?)",
                                  (time.time(), target))
        self.commit()
        return self.run_id

    def finish_run(self, outcome: str) -> None:
        if self.run_id is not None:
            self._write("UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?",
                        (time.time(), outcome, self.run_id))
        self.commit()

    def record_outcome(self, job_id: str, key: str, outcome: str, message: str = "",
                       task_id: str | None = None) -> None:
        """A job's one outcome in this run (what `runner status` and the report show)."""
        self._write("INSERT OR REPLACE INTO outcomes (run_id, job_id, key, outcome, message, "
                    "task_id, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (self.run_id or 0, job_id, key, outcome, message, task_id, time.time()))

    def latest_outcomes(self) -> dict[str, JobOutcomeRow]:
        """Each job's most recent outcome, from whichever run last touched it."""
        rows = self.db.execute(
            "SELECT o.run_id, o.job_id, o.key, o.outcome, o.message, o.task_id, o.at "
            "FROM outcomes o JOIN (SELECT job_id, max(run_id) AS run_id FROM outcomes "
            "GROUP BY job_id) latest USING (job_id, run_id)").fetchall()
        return {r[1]: JobOutcomeRow(*r) for r in rows}

    def last_run_id(self) -> int | None:
        row = self.db.execute("SELECT max(id) FROM runs").fetchone()
        return row[0] if row else None

    # --- tasks --------------------------------------------------------------------------
    def begin_submit(self, key: str, job_id: str, provider: str, attempt: int) -> int:
        """Record that a request is about to be sent. Committed before it is sent."""
        now = time.time()
        if self._task_keys is not None:
            self._task_keys.add(key)
        return self._write(
            "INSERT INTO tasks (key, job_id, provider, attempt, state, created_at, updated_at,"
            " run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, job_id, provider, attempt, TaskRowState.SUBMITTING, now, now, self.run_id),
        )

    def set_task(self, row_id: int, state: TaskRowState, *, task_id: str | None = None,
                 result: dict[str, Any] | None = None, error: str | None = None,
                 credits: float | None = None) -> None:
        """Move a task row to `state`, if `TRANSITIONS` allows it from the state it is in
        (checked by the UPDATE itself: no read first); else a StoreError, nothing written."""
        sources = _SOURCES[state]
        if not sources:
            raise self._refused(row_id, state)
        sets = ["state = ?", "updated_at = ?"]
        args: list[Any] = [state.value, time.time()]
        for column, value in (("task_id", task_id), ("error", error), ("credits", credits)):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        if result is not None:
            sets.append("result = ?")
            args.append(json.dumps(result, sort_keys=True))
        cursor = self._execute(
            f"UPDATE tasks SET {', '.join(sets)} WHERE id = ? AND state IN "
            f"({', '.join('?' * len(sources))})", (*args, row_id, *sources))
        if cursor.rowcount != 1:
            raise self._refused(row_id, state)

    def _refused(self, row_id: int, state: TaskRowState) -> StoreError:
        row = self.db.execute("SELECT state FROM tasks WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            return StoreError(f"{self.path}: the journal has no task row {row_id}")
        return StoreError(f"{self.path}: task row {row_id} cannot move from '{row[0]}' to "
                          f"'{state.value}' (runner.store.journal.TRANSITIONS)")

    def live_task(self, key: str) -> TaskRow | None:
        """The newest task of this request that must be collected, not re-sent."""
        row = self.db.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE key = ? AND state IN "
            f"({', '.join('?' * len(_ALIVE))}) ORDER BY id DESC LIMIT 1", (key, *_ALIVE),
        ).fetchone()
        return _task(row) if row else None

    def failed_generations(self, key: str) -> int:
        row = self.db.execute("SELECT count(*) FROM tasks WHERE key = ? AND state = ? "
                              "AND error LIKE 'generation failed%'",
                              (key, TaskRowState.FAILED)).fetchone()
        return int(row[0])

    # --- assets and outputs -----------------------------------------------------------
    def record_asset(self, key: str, *, sha256: str, size: int, ext: str,
                     duration_s: float | None, credits: float | None, task_id: str | None,
                     result_url: str | None, payload: dict[str, Any] | None = None,
                     created_at: float | None = None) -> AssetRow:
        asset = AssetRow(key, sha256, size, ext, duration_s, credits, task_id, result_url,
                         payload, created_at or time.time(), self.run_id)
        self._write(
            f"INSERT OR REPLACE INTO assets ({_ASSET_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, sha256, size, ext, duration_s, credits, task_id, result_url,
             # Keys in their order: a stitch's sidecar restored from here is the file
             # its maker wrote, byte for byte.
             json.dumps(payload) if payload is not None else None,
             asset.created_at, self.run_id),
        )
        if self._assets is not None:
            self._assets[key] = asset
        return asset

    def asset(self, key: str) -> AssetRow | None:
        if self._assets is not None:
            return self._assets.get(key)
        row = self.db.execute(f"SELECT {_ASSET_COLUMNS} FROM assets WHERE key = ?",
                              (key,)).fetchone()
        return _asset(row) if row else None

    def all_assets(self) -> dict[str, AssetRow]:
        rows = self.db.execute(f"SELECT {_ASSET_COLUMNS} FROM assets").fetchall()
        return {r[0]: _asset(r) for r in rows}

    def record_output(self, path: str, sha256: str, size: int, mtime_ns: int) -> None:
        self._write("INSERT OR REPLACE INTO outputs (path, sha256, size, mtime_ns) "
                    "VALUES (?, ?, ?, ?)", (path, sha256, size, mtime_ns))

    def outputs(self) -> dict[str, tuple[str, int, int]]:
        rows = self.db.execute("SELECT path, sha256, size, mtime_ns FROM outputs").fetchall()
        return {path: (sha, size, mtime) for path, sha, size, mtime in rows}

    def forget_asset(self, key: str) -> None:
        self._write("DELETE FROM assets WHERE key = ?", (key,))
        if self._assets is not None:
            self._assets.pop(key, None)

    def forget_output(self, path: str) -> None:
        self._write("DELETE FROM outputs WHERE path = ?", (path,))
