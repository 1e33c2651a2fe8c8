"""A built build without a run: manifest, lockfile, journal and outputs, made in seconds.

For benchmarks and tests of what reads a build (the report, the review app) at
sizes a real run would take minutes to reach: `jobs` sound-effect jobs of
`variants` takes each, as one matrix entry. Every output is a hard link to one
of a few real audio files (copies where links are refused), so 10,000 outputs
cost no disk and still decode; the lockfile and journal say what a run would.

    manifest = make_fake_build(folder, jobs=3_334, variants=3, sources=[a.mp3, b.mp3])
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from runner.store.journal import Journal
from runner.store.lockfile import LockEntry, write_lockfile

MODEL = "elevenlabs/sound-effect-v2"


def make_fake_build(folder: Path, *, jobs: int, variants: int, sources: list[Path],
                    name: str = "big") -> Path:
    """Write the build into `folder`; returns its manifest (the live target's)."""
    folder.mkdir(parents=True, exist_ok=True)
    width = len(str(jobs - 1))
    numbers = [f"{n:0{width}d}" for n in range(jobs)]
    output = "sfx/{n}_{variant}.{ext}" if variants > 1 else "sfx/{n}.{ext}"
    manifest = folder / f"{name}.yaml"
    manifest.write_text(
        f"version: 1\nname: {name}\noutput_dir: out\ndefaults: {{provider: kie}}\njobs:\n"
        f"  - id: \"sfx_{{n}}\"\n    model: {MODEL}\n    variants: {variants}\n"
        f"    output: {output}\n    matrix: {{n: [{', '.join(repr(n) for n in numbers)}]}}\n"
        "    input: {text: \"Sound number {n}: a creak, a thud, a distant bell\", "
        "duration_seconds: 1.5}\n", encoding="utf-8")
    digests = {src: hashlib.sha256(src.read_bytes()).hexdigest() for src in sources}
    out = folder / "out"
    (out / "sfx").mkdir(parents=True, exist_ok=True)
    entries: dict[str, LockEntry] = {}
    for i, n in enumerate(numbers):
        for variant in range(1, variants + 1):
            job_id = f"sfx_{n}#{variant}" if variants > 1 else f"sfx_{n}"
            source = sources[(i * variants + variant) % len(sources)]
            relative = (f"sfx/{n}_{variant}" if variants > 1 else f"sfx/{n}") + source.suffix
            target = out / relative
            if not target.exists():
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copyfile(source, target)
            key = hashlib.sha256(f"{name}:{job_id}".encode()).hexdigest()
            entries[job_id] = LockEntry(
                key=key, provider="kie", model=MODEL, output=relative, sha256=digests[source],
                size=source.stat().st_size, created_at="2026-01-01T00:00:00Z",
                task_id=f"task_{i}_{variant}", duration_s=1.5, credits=2.0, variant=variant)
    write_lockfile(folder / f"{name}.lock.json", name, entries)
    with Journal(out / ".runner" / "journal.sqlite") as journal:
        journal.start_run("live")
        for job_id, entry in entries.items():
            journal.record_asset(entry.key, sha256=entry.sha256, size=entry.size,
                                 ext=entry.output.rsplit(".", 1)[-1], duration_s=1.5,
                                 credits=2.0, task_id=entry.task_id, result_url=None)
            journal.record_outcome(job_id, entry.key, "done", task_id=entry.task_id)
            st = (out / entry.output).stat()  # what a run journals: readers then skip hashing
            journal.record_output(entry.output, entry.sha256, st.st_size, st.st_mtime_ns)
        journal.finish_run("finished")
    return manifest
