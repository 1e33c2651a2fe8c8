"""Review decisions in real runs against the sandbox: frozen, new takes, re-stitches, export.

Decisions are made through `ReviewSession` (what the web app calls); every
request is counted by the sandbox itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner.engine.retry import JobOutcome
from runner.errors import ManifestInvalid, UsageError
from runner.manifest.load import load_pipeline
from runner.plan.export import export
from runner.plan.housekeeping import clean
from runner.plan.plan import State, make_plan
from runner.report.review_session import ReviewSession
from runner.sandbox import SandboxServer
from runner.store.cache import ContentCache
from runner.store.cache import file_digest as digest
from runner.store.layout import Target, layout_for
from tests.engine.helpers import created, lockfile, output, run, write_manifest


def states(manifest: Path, force: tuple[str, ...] = ()) -> dict[str, State]:
    pipeline = load_pipeline(manifest)
    plan = make_plan(pipeline, layout_for(pipeline, Target.SANDBOX), force=force)
    return {p.job.id: p.state for p in plan.jobs}


def test_approved_is_frozen_and_rejected_gets_one_new_take(tmp_path: Path,
                                                           sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: boom
          model: elevenlabs/sound-effect-v2
          input: {text: Big boom, duration_seconds: 1}
        - id: hiss
          model: elevenlabs/sound-effect-v2
          input: {text: Steam hiss, duration_seconds: 1}
    """)
    assert run(manifest, sandbox.url)[0] == 0
    review = ReviewSession(manifest, sandbox=True, reviewer="t")
    review.decide("boom", "approved")
    rejected = review.decide("hiss", "rejected", "too thin")
    assert rejected["decision"] == "rejected" and rejected["note"] == "too thin"
    first = lockfile(manifest)

    # An approved take survives a change of its request; a rejected one is remade.
    manifest.write_text(manifest.read_text().replace("Big boom", "Bigger boom"))
    assert states(manifest) == {"boom": State.FROZEN, "hiss": State.REJECTED}
    assert states(manifest, force=("boom",))["boom"] is State.FORCED  # unless forced
    before = created(sandbox.url)
    code, _, result, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures
    assert created(sandbox.url) == before + 1 and tally.requests_submitted == 1
    assert result.outcomes == {"hiss": JobOutcome.DONE}
    second = lockfile(manifest)
    assert second["boom"] == first["boom"]
    assert second["hiss"]["task_id"] != first["hiss"]["task_id"]
    cache = ContentCache(manifest.parent / "out.sandbox/.runner/cache")
    assert cache.get(first["hiss"]["sha256"], "mp3") is not None  # the rejected take stays
    # The new take is unreviewed; the rejection is history, shown as such.
    assert states(manifest) == {"boom": State.FROZEN, "hiss": State.UP_TO_DATE}
    listed = {a["id"]: a for g in review.listing()["groups"] for a in g["assets"]}
    assert listed["hiss"]["decision"] is None
    assert listed["hiss"]["earlier"] == {"decision": "rejected", "note": "too thin"}
    # `runner clean` keeps reviewed takes, the rejected one included.
    clean(manifest, sandbox=True)
    assert cache.get(first["hiss"]["sha256"], "mp3") is not None


def test_a_rejected_segment_is_remade_and_the_programme_restitched(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: tale
          model: elevenlabs/text-to-speech-turbo-2-5
          input: {voice: Brian}
          narration: {text: "The tide came in.\\n\\nMara climbed the stairs.", max_chars: 50}
    """)
    assert run(manifest, sandbox.url)[0] == 0
    programme = digest(output(manifest, "tale.mp3"))
    review = ReviewSession(manifest, sandbox=True)
    with pytest.raises(UsageError, match="reject the segments"):
        review.decide("tale", "rejected")
    review.decide("tale/002", "rejected", "mumbled")
    assert states(manifest) == {"tale/001": State.UP_TO_DATE, "tale/002": State.REJECTED,
                                "tale": State.RETAKEN}
    before = created(sandbox.url)
    code, _, result, tally = run(manifest, sandbox.url)
    assert code == 0, tally.failures
    assert created(sandbox.url) == before + 1
    assert result.outcomes == {"tale/002": JobOutcome.DONE, "tale": JobOutcome.DONE}
    assert digest(output(manifest, "tale.mp3")) != programme  # made from the new take


def test_an_approved_take_is_reprocessed_when_only_a_step_changes(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: chime
          model: elevenlabs/sound-effect-v2
          input: {text: Door chime, duration_seconds: 1}
          postprocess: {fade_out_ms: 50}
    """)
    assert run(manifest, sandbox.url)[0] == 0
    ReviewSession(manifest, sandbox=True).decide("chime", "approved")
    manifest.write_text(manifest.read_text().replace("fade_out_ms: 50", "fade_out_ms: 300"))
    assert states(manifest) == {"chime": State.CHANGED}  # the same take, processed anew
    before = created(sandbox.url)
    assert run(manifest, sandbox.url)[0] == 0
    assert created(sandbox.url) == before
    session = ReviewSession(manifest, sandbox=True)
    (group,) = session.listing()["groups"]
    assert group["assets"][0]["decision"] == "approved"  # still the approved take
    # A change of the request itself is frozen, as for any approved take.
    manifest.write_text(manifest.read_text().replace("Door chime", "Shop bell"))
    assert states(manifest) == {"chime": State.FROZEN}


def test_export_copies_the_chosen_takes(tmp_path: Path, sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: step_{surface}
          matrix: {surface: [wood, snow]}
          model: elevenlabs/sound-effect-v2
          variants: 3
          output: sfx/{surface}_{variant}.{ext}
          approved: game/steps/{surface}.{ext}
          input: {text: "Footsteps on {surface}", duration_seconds: 0.8}
        - id: gong
          model: elevenlabs/sound-effect-v2
          input: {text: Gong, duration_seconds: 1}
    """)
    assert run(manifest, sandbox.url)[0] == 0
    session = ReviewSession(manifest, sandbox=True)
    session.pick("step_wood", 2)  # review exports it at once: the job declares approved:
    game = output(manifest, "game/steps/wood.mp3")
    assert digest(game) == digest(output(manifest, "sfx/wood_2.mp3"))
    session.decide("step_snow#1", "approved")
    session.decide("step_snow#3", "approved")  # two approved, none picked: which one?
    report = export(manifest, sandbox=True)
    reasons = {c.base_id: c.reason for c in report.without}
    assert reasons == {"step_snow": "2 takes approved: pick one", "gong": "no take approved"}
    session.decide("gong", "approved")
    report = export(manifest, sandbox=True)
    assert [j for j, _ in report.written] == ["gong"]
    assert digest(output(manifest, "approved/gong.mp3")) == digest(output(manifest, "gong.mp3"))
    assert [j for j, _ in report.unchanged] == ["step_wood#2"]
    # Another take is picked: the file follows; un-approving removes what export wrote.
    session.pick("step_wood", 3)
    assert digest(game) == digest(output(manifest, "sfx/wood_3.mp3"))
    session.decide("gong", "unreviewed")
    report = export(manifest, sandbox=True)
    assert report.removed == [output(manifest, "approved/gong.mp3").resolve()]
    # A file changed by hand is never overwritten nor removed.
    game.write_bytes(b"edited by hand")
    session.decide("step_wood#3", "rejected")  # clears the pick: #2 is the approved one now
    report = export(manifest, sandbox=True)
    assert report.kept == [game.resolve()] and game.read_bytes() == b"edited by hand"
    game.unlink()  # once it is out of the way, export writes there again
    report = export(manifest, sandbox=True)
    assert ("step_wood#2", game.resolve()) in report.written
    to = tmp_path / "engine_assets"
    session.decide("gong", "approved")
    report = export(manifest, sandbox=True, to=to)
    assert (to / "approved" / "gong.mp3").is_file()
    # The command says the same, file by file.
    cli = subprocess.run([sys.executable, "-m", "runner", "export", str(manifest), "--sandbox",
                          "--to", str(to), "--dry-run"], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert cli.stdout.splitlines() == [
        "not exported: step_snow (2 takes approved: pick one)",
        "0 to write, 2 unchanged, 1 without a chosen take"]  # gong and step_wood#2 are there


def test_approved_templates_are_checked(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, """
        - id: a
          model: elevenlabs/sound-effect-v2
          variants: 2
          output: a_{variant}.{ext}
          approved: "picked/a_{variant}.{ext}"
          input: {text: A}
        - id: b
          model: elevenlabs/sound-effect-v2
          approved: ../b.{ext}
          input: {text: B}
        - id: c
          model: elevenlabs/sound-effect-v2
          approved: d.mp3
          input: {text: C}
        - id: d
          model: elevenlabs/sound-effect-v2
          input: {text: D}
    """)
    with pytest.raises(ManifestInvalid) as caught:
        load_pipeline(manifest)
    text = "\n".join(str(p) for p in caught.value.problems)
    assert "$.jobs[0].approved (job a#1): unknown placeholder {variant} in approved" in text
    assert "$.jobs[1].approved (job b): approved path '../b.{ext}' leaves output_dir" in text
    assert "$.jobs[2].approved (job c): approved path 'd.mp3' is a job's output" in text


def test_bad_decisions_are_refused_with_a_reason(tmp_path: Path,
                                                 sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: one
          model: elevenlabs/sound-effect-v2
          input: {text: One}
    """)
    session = ReviewSession(manifest, sandbox=True)
    with pytest.raises(UsageError, match="one has no take yet: run it first"):
        session.decide("one", "approved")
    assert run(manifest, sandbox.url)[0] == 0
    with pytest.raises(UsageError, match="unknown decision 'maybe'"):
        session.decide("one", "maybe")
    with pytest.raises(UsageError, match="no take 'two'"):
        session.decide("two", "approved")
    with pytest.raises(UsageError, match="has one take: approve it instead"):
        session.pick("one", 1)
    assert not session.review_file.exists()  # nothing was written for refused decisions


def test_review_and_export_say_when_there_is_nothing_to_read(tmp_path: Path,
                                                             sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: one
          model: elevenlabs/sound-effect-v2
          input: {text: One}
    """)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runner", *args, str(manifest)],
                              capture_output=True, text=True, check=False, cwd=tmp_path)

    never = cli("review", "--sandbox")
    assert never.returncode == 2
    assert "nothing to review: the sandbox build of" in never.stderr and "never run" in never.stderr
    assert run(manifest, sandbox.url)[0] == 0
    live = cli("export")  # only a sandbox build exists
    assert live.returncode == 2 and "add --sandbox to read it" in live.stderr
    assert cli("review", "--port", "70000").returncode == 2
