"""Benchmark: the report and the review app over a 10,000-asset build.

    python bench/bench_review.py                  # 3,334 jobs x 3 takes = 10,002 assets
    python bench/bench_review.py --quick          # 334 x 3
    python bench/bench_review.py --no-browser     # skip the Chromium figures

The build is made without a run (runner/testing/fake_build.py: outputs are hard
links to a few real MP3s, lockfile and journal as a run leaves them). Then:

  report   `runner report` in a child process: time, size of report.html, of
           its parts, and of the largest part (the page used to be one file of
           about 56 MB for such a build: inline SVG waveforms for every card)
  review   `runner review` in a child process, over HTTP: the list (size, time
           cold and warm), waveforms for a screenful (decoded, then cached),
           decisions (time from POST to the review file written), file size
  browser  Chromium (Playwright, the system browser) on both pages: time until
           the list is usable, rows in the document, time per key press (j) to
           the next take selected and drawn, a jump to the middle of the list,
           a filter over every take, the page's JS heap; the report's first
           page and its next page (which loads a part)

Prints figures with their targets; asserts nothing (the machine is shared: read
the figures, do not gate on them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.audio.ffmpeg import ffmpeg_exe
from runner.testing.fake_build import make_fake_build

CHROMIUM = os.environ.get("RUNNER_CHROMIUM", "/usr/bin/chromium")
SOURCES = 4  # distinct audio files; every output is a hard link to one of them


def sources(folder: Path) -> list[Path]:
    out = []
    for i, hz in enumerate((220, 330, 440, 550)[:SOURCES]):
        path = folder / f"src{i}.mp3"
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                        "-i", f"sine=f={hz}:d=1.5", "-af", "volume=0.3", "-c:a", "libmp3lame",
                        "-b:a", "128k", "-y", str(path)], check=True)
        out.append(path)
    return out


def mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def bench_report(manifest: Path) -> Path:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "runner", "report", str(manifest)], check=True,
                   capture_output=True)
    elapsed = time.perf_counter() - start
    page = manifest.parent / "out" / "report.html"
    parts = sorted((page.parent / "report.parts").glob("*.js"))
    sizes = [p.stat().st_size for p in parts]
    print(f"report   made in {elapsed:.1f} s (whole process, peaks cached by content)")
    print(f"         report.html {mb(page.stat().st_size)} (target < 5 MB; one file of "
          "~56 MB before)")
    print(f"         {len(parts)} parts, {mb(sum(sizes))} in all, largest {mb(max(sizes))}"
          if parts else "         no parts")
    return page


def get(url: str, body: dict[str, Any] | None = None) -> tuple[float, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={
        "Content-Type": "application/json"} if data else {})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as answer:
        payload = answer.read()
    return time.perf_counter() - start, payload


def start_review(manifest: Path) -> tuple[subprocess.Popen[str], str]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "runner", "review", str(manifest),
                             "--reviewer", "bench"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.match(r"review: (\S+)", line)
    if not match:
        proc.kill()
        sys.exit(f"runner review did not start: {line!r}")
    print(f"review   started in {time.perf_counter() - start:.1f} s (manifest, lockfile and "
          "journal read before the URL is printed)")
    return proc, match.group(1)


def bench_review(manifest: Path, url: str) -> list[str]:
    cold, listing = get(url + "api/assets")
    warm, _ = get(url + "api/assets")
    data = json.loads(listing)
    ids = [a["id"] for g in data["groups"] for a in g["assets"]]
    print(f"         {len(ids)} takes in {len(data['groups'])} groups; the list "
          f"{mb(len(listing))}, first request {cold * 1000:.0f} ms, again {warm * 1000:.0f} ms "
          "(target < 1 s)")
    screen = ids[300:316]
    first, _ = get(url + "api/views", {"ids": screen})
    again, _ = get(url + "api/views", {"ids": screen})
    print(f"         waveforms+loudness for a screenful (16 takes, {SOURCES} distinct files "
          f"here): {first * 1000:.0f} ms decoding, {again * 1000:.0f} ms cached")
    times = []
    review = manifest.with_name(manifest.stem + ".review.jsonl")
    for i, job in enumerate(ids[:40]):
        seconds, _ = get(url + "api/decide", {"id": job, "decision": "approved" if i % 4
                                              else "rejected", "note": "bench"})
        times.append(seconds)
    print(f"         decision written: median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms (atomic rewrite of the review file); "
          f"file {review.stat().st_size / 1024:.1f} KB for 40 decisions")
    return ids


KEYS = """async (count) => {
  const handler = [], frame = [];
  for (let i = 0; i < count; i++) {
    const before = document.querySelector('.cell.sel').dataset.id;
    const start = performance.now();
    document.dispatchEvent(new KeyboardEvent('keydown', {key: 'j', bubbles: true}));
    handler.push(performance.now() - start);
    await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
    const now = document.querySelector('.cell.sel');
    if (!now || now.dataset.id === before) { throw new Error('selection did not move'); }
    frame.push(performance.now() - start);
  }
  const stats = (xs) => {
    xs.sort((a, b) => a - b);
    return {median: xs[xs.length >> 1], p95: xs[Math.floor(xs.length * .95)],
            max: xs[xs.length - 1]};
  };
  return {handler: stats(handler), frame: stats(frame)};
}"""


NEXT_PAGE = """() => new Promise(resolve => {
  const shown = document.querySelector('#shown'), before = shown.textContent;
  const start = performance.now();
  const watch = new MutationObserver(() => {
    if (shown.textContent !== before) {
      watch.disconnect();
      requestAnimationFrame(() => resolve(performance.now() - start));
    }
  });
  watch.observe(shown, {childList: true, characterData: true, subtree: true});
  document.querySelector('nav.pager button:last-child').click();
})"""


def bench_browser(review_url: str, report: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("browser  skipped: the playwright package is not installed")
        return
    if not Path(CHROMIUM).is_file():
        print(f"browser  skipped: no Chromium at {CHROMIUM}")
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--enable-precise-memory-info"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        start = time.perf_counter()
        page.goto(review_url)
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        ready = time.perf_counter() - start
        rows = page.eval_on_selector_all(".row", "rs => rs.length")
        nodes = page.evaluate("document.getElementsByTagName('*').length")
        print(f"browser  review usable after {ready:.2f} s (list fetched and drawn in "
              f"{page.evaluate('document.body.dataset.loadMs')} ms in the page); "
              f"{rows} rows, {nodes} elements in the document")
        keys = page.evaluate(KEYS, 200)
        handler, frame = keys["handler"], keys["frame"]
        print(f"         key j, the page's work: median {handler['median']:.1f} ms, p95 "
              f"{handler['p95']:.1f} ms, max {handler['max']:.1f} ms (target: well inside "
              "a 16.7 ms frame)")
        print(f"         key j to the next frame painted: median {frame['median']:.1f} ms, "
              f"p95 {frame['p95']:.1f} ms (a frame is 16.7 ms: this includes the wait for it)")
        jump = page.evaluate("""() => new Promise(resolve => {
            const list = document.querySelector('#list'), start = performance.now();
            list.scrollTop = list.scrollHeight / 2;
            requestAnimationFrame(() => requestAnimationFrame(
              () => resolve(performance.now() - start)));
          })""")
        print(f"         jump to the middle of the list and draw it: {jump:.1f} ms")
        filtered = page.evaluate("""() => new Promise(resolve => {
            const select = document.querySelector('#f-review'), start = performance.now();
            select.value = 'unreviewed';
            select.dispatchEvent(new Event('change'));
            requestAnimationFrame(() => resolve(performance.now() - start));
          })""")
        print(f"         filter every take (unreviewed): {filtered:.1f} ms; "
              f"{page.inner_text('#shown')}")
        heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
        print(f"         JS heap {mb(int(heap))}")
        static = browser.new_page(viewport={"width": 1280, "height": 900})
        static.add_init_script("document.addEventListener('DOMContentLoaded', () => "
                               "{ window.__dcl = performance.now(); })")
        static.goto(report.as_uri(), wait_until="domcontentloaded", timeout=120_000)
        static.wait_for_selector("body[data-ready='1']", timeout=120_000)
        parsed = static.evaluate("window.__dcl")
        shown = static.evaluate("Number(document.body.dataset.readyMs)")
        following = static.evaluate(NEXT_PAGE)
        print(f"browser  report: page parsed after {parsed:.0f} ms, first page of cards "
              f"shown after {shown:.0f} ms; next page (loads a part) drawn in "
              f"{following:.0f} ms; {static.inner_text('#shown')}")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=3334)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="334 jobs")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    jobs = 334 if args.quick else args.jobs
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        manifest = make_fake_build(folder / "build", jobs=jobs, variants=args.variants,
                                   sources=sources(folder))
        print(f"build    {jobs * args.variants} assets made without a run in "
              f"{time.perf_counter() - start:.1f} s")
        report = bench_report(manifest)
        # The review then decodes for itself what it shows (the report cached it all).
        shutil.rmtree(manifest.parent / "out" / ".runner" / "peaks", ignore_errors=True)
        proc, url = start_review(manifest)
        try:
            bench_review(manifest, url)
            if not args.no_browser:
                bench_browser(url, report)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
