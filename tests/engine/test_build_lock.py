"""One build, one run (issue 12, item 1): an OS file lock on the build's state folder.

Two `runner run` processes of one build used to buy every job twice, call each
other's tasks "uncertain", and fail with "database is locked". Here they run as
real processes against one sandbox over HTTP; the lock is the kernel's, so a
killed holder leaves nothing stale, and readers (`status`, `plan`, `report`)
never need it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.cli.main import main
from runner.sandbox import SandboxServer
from runner.store.buildlock import BuildLock
from tests.conftest import FakeClock
from tests.engine.helpers import created, run, stats, write_manifest

REPO = Path(__file__).parents[2]
JOBS = """
- id: hit_{n}
  matrix: {n: [1, 2, 3, 4, 5, 6]}
  model: elevenlabs/sound-effect-v2
  input: {text: "Hit {n}", duration_seconds: 1}
"""


def runner_process(manifest: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "run", manifest.name, "--sandbox-url", url,
         "--no-progress", *extra],
        cwd=manifest.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def state_dir(manifest: Path) -> Path:
    return manifest.parent / "out.sandbox" / ".runner"


@pytest.mark.slow
def test_two_runs_of_one_build_started_together_buy_each_job_once(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """The issue's proof: two processes of one 200-job manifest, started together."""
    manifest = write_manifest(tmp_path, """
        - id: sfx_{{n}}
          matrix: {{n: [{}]}}
          model: elevenlabs/sound-effect-v2
          input: {{text: "Crate {{n}} dropped on stone", duration_seconds: 0.5}}
    """.format(", ".join(map(str, range(200)))))
    first = runner_process(manifest, sandbox.url)
    second = runner_process(manifest, sandbox.url)
    outs = [p.communicate(timeout=240) for p in (first, second)]
    codes = [first.returncode, second.returncode]
    assert codes == [ExitCode.OK, ExitCode.OK], outs
    print(f"\ntwo runs of one 200-job build: exit codes {codes}, "
          f"{created(sandbox.url)} tasks created")
    assert created(sandbox.url) == 200
    assert set(stats(sandbox.url)["tasks"]["by_input_hash"].values()) == {1}
    # One of them ran the build; the other waited for it (one line naming the holder)
    # and then found every job up to date.
    waited = [err for _, err in outs if "waiting for the build in out.sandbox" in err]
    assert len(waited) == 1, outs
    assert "in use by pid" in waited[0] and "(runner run)" in waited[0]
    summaries = [out for out, _ in outs]
    assert sum("200 done" in s for s in summaries) == 1, summaries
    assert sum("200 up to date" in s for s in summaries) == 1, summaries
    assert not any("uncertain" in s or "database is locked" in s for s in summaries)


def test_no_wait_refuses_at_once_naming_the_holder(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, JOBS)
    code, _, _, _ = run(manifest, sandbox.url)
    assert code == ExitCode.OK and created(sandbox.url) == 6
    (tmp_path / "out.sandbox" / "hit_1.mp3").unlink()  # work for the next run: a restore
    holder = BuildLock(state_dir(manifest), "runner run")
    assert holder.try_acquire()
    try:
        capsys.readouterr()
        code = main(["run", str(manifest), "--sandbox-url", sandbox.url, "--no-wait",
                     "--no-progress"])
        err = capsys.readouterr().err
        assert code == ExitCode.BUILD_BUSY == 4
        assert f"in use by pid {os.getpid()} on " in err and "(runner run)" in err
        assert "--no-wait" in err
        assert (tmp_path / "out.sandbox" / "hit_1.mp3").exists() is False  # nothing done
        # Readers need no lock while the build is held.
        assert main(["status", str(manifest), "--sandbox"]) == ExitCode.OK
        assert main(["plan", str(manifest), "--sandbox"]) == ExitCode.OK
        # `clean` writes the build: it refuses at once too.
        assert main(["clean", str(manifest), "--sandbox"]) == ExitCode.BUILD_BUSY
    finally:
        holder.release()
    assert main(["run", str(manifest), "--sandbox-url", sandbox.url, "--no-wait",
                 "--no-progress", "-q"]) == ExitCode.OK
    assert (tmp_path / "out.sandbox" / "hit_1.mp3").exists()
    assert created(sandbox.url) == 6  # restored from the cache, not bought


def test_status_and_report_read_a_build_while_a_run_writes_it(
        tmp_path: Path, sandbox: SandboxServer, fake_clock: FakeClock,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A real run in another process holds the build (its tasks are not visible until
    the sandbox's fake clock moves); `status` and `report` read the journal meanwhile,
    and never fail."""
    sandbox.config.update({"invisible_s": 3600})
    manifest = write_manifest(tmp_path, JOBS)
    proc = runner_process(manifest, sandbox.url)
    try:
        deadline = time.monotonic() + 60
        while created(sandbox.url) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert created(sandbox.url) == 6
        capsys.readouterr()
        assert main(["status", str(manifest), "--sandbox"]) == ExitCode.OK
        assert "in flight" in capsys.readouterr().out
        assert main(["report", str(manifest), "--sandbox", "--out",
                     str(tmp_path / "r.html")]) == ExitCode.OK
        assert BuildLock(state_dir(manifest), "test").try_acquire() is False
    finally:
        fake_clock.advance(3601)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.OK, (out, err)
    assert created(sandbox.url) == 6


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, sandbox: SandboxServer) -> None:
    folder = tmp_path / "out.sandbox" / ".runner"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from runner.store.buildlock import BuildLock
        assert BuildLock(Path({str(folder)!r}), "runner run").try_acquire()
        print("held", flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert BuildLock(folder, "test").try_acquire() is False
        os.kill(holder.pid, signal.SIGKILL)
        assert holder.wait(timeout=30) == -signal.SIGKILL
    finally:
        holder.kill()
    lock = BuildLock(folder, "test")
    assert lock.try_acquire()  # the kernel released it with the process
    lock.release()
    manifest = write_manifest(tmp_path, JOBS)
    code, _, _, _ = run(manifest, sandbox.url)
    assert code == ExitCode.OK


def test_waiting_is_said_once_then_the_run_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / ".runner"
    holder = BuildLock(folder, "runner clean")
    assert holder.try_acquire()
    said: list[str] = []
    waiter = BuildLock(folder, "runner run")

    def release_soon() -> None:
        time.sleep(0.5)
        holder.release()

    threading.Thread(target=release_soon).start()
    waiter.acquire(wait=True, on_wait=said.append)
    waiter.release()
    assert len(said) == 1
    assert said[0].startswith("waiting for the build in ") and "(runner clean)" in said[0]


@pytest.mark.skipif(sys.platform == "win32", reason="takes the lock with flock directly")
def test_a_run_arriving_before_the_holder_has_written_itself_still_names_it(
        tmp_path: Path) -> None:
    """The holder writes who it is just after it takes the lock; a run that arrives in
    between found an empty file and said "another process" (seen once in CI)."""
    import fcntl

    folder = tmp_path / ".runner"
    folder.mkdir()
    path = folder / "build.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, nothing written yet
    mine = BuildLock(folder, "runner run")

    def write_then_release() -> None:
        time.sleep(0.2)
        os.write(fd, holder_text.encode())
        time.sleep(0.3)
        os.close(fd)

    holder_text = ('{"pid": 4242, "host": "ci-7", "since": 1700000000, '
                 '"command": "runner run"}')
    threading.Thread(target=write_then_release).start()
    said: list[str] = []
    mine.acquire(wait=True, on_wait=said.append)
    mine.release()
    assert len(said) == 1 and "in use by pid 4242 on ci-7" in said[0], said
