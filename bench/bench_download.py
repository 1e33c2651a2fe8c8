"""Benchmark (issue 4, memory of a large download): what fetching one 200 MB result adds to RSS.

What: a valid 200 MB audio file, made once with ffmpeg (`runner.audio.ffmpeg.ffmpeg_exe()`),
served by a tiny HTTP server on 127.0.0.1 in its own process
(`python -m http.server`), fetched through the engine's download path
(`runner.providers.download.fetch`: stream to the cache's temp file, sha256, fsync, verify
the audio, adopt into the cache) with the run's real client
(`runner.providers.http.make_client`), in a fresh measuring process. Two formats:

- WAV: 44.1 kHz stereo s16le sine, `wav` spec (verification reads the headers);
- MP3: 10 s of 320 kbps CBR MP3 (no ID3, no Xing frame) made by ffmpeg, repeated
  to 200 MB: a valid stream of ~5,000 s whose every frame header
  verification walks (`mp3_44100_320`... spec `mp3_44100_192` is the largest the
  runner knows, so the file is asked for as `mp3_44100_128`: bitrate is never
  enforced).

How: the measuring process first fetches a 2 MB file of the same format (imports,
client, caches warm), then reads its RSS, resets the peak (`/proc/self/clear_refs`
5), fetches the 200 MB file, and reports the peak (`VmHWM`) minus the RSS before;
a sampling thread (every 5 ms) also records the peak of anonymous and
file-backed RSS separately (file pages of a memory-mapped file count in RSS
but are the page cache's, reclaimable).

Target: the download adds less than 30 MB.

    python bench/bench_download.py [--quick] [--mb 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import runbench as rb

from runner.audio.ffmpeg import ffmpeg_exe

MEASURE = r"""
import asyncio, json, sys, threading, time
from pathlib import Path
from runner.providers import download
from runner.audio.formats import FormatSpec
from runner.providers.http import make_client
from runner.store.cache import ContentCache

def status():
    fields = {}
    for line in open("/proc/self/status"):
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return fields

peak = {"RssAnon": 0.0, "RssFile": 0.0}
sampling = True
def sample():
    while sampling:
        s = status()
        for k in peak:
            peak[k] = max(peak[k], s[k])
        time.sleep(0.005)

async def main(base, small, big, spec, ext, cache_dir):
    cache = ContentCache(Path(cache_dir))
    async with make_client() as client:
        await download.fetch(client, f"{base}/{small}", cache, spec=FormatSpec.parse(spec),
                             ext=ext, provider="bench", job_id="warm-up")
        before = status()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        for k in peak:
            peak[k] = before[k]
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        started = time.perf_counter()
        fetched = await download.fetch(client, f"{base}/{big}", cache,
                                       spec=FormatSpec.parse(spec), ext=ext,
                                       provider="bench", job_id="big")
        elapsed = time.perf_counter() - started
        global sampling
        sampling = False
        thread.join()
        after = status()
    print(json.dumps({"before": before, "after": after, "peak": peak, "seconds": elapsed,
                      "size": fetched.blob.size,
                      "duration_s": fetched.info.duration_s if fetched.info else None}))

asyncio.run(main(*sys.argv[1:]))
"""


def make_wav(path: Path, mb: float) -> None:
    seconds = mb * 1e6 / (44100 * 4)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:sample_rate=44100:duration={seconds:.3f}",
                    "-ac", "2", "-c:a", "pcm_s16le", str(path)], check=True)


def make_mp3(path: Path, mb: float) -> None:
    piece = path.with_suffix(".piece.mp3")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=44100:duration=10", "-ac", "2",
                    "-c:a", "libmp3lame", "-b:a", "320k", "-write_xing", "0",
                    "-id3v2_version", "0", "-write_id3v1", "0", str(piece)], check=True)
    data = piece.read_bytes()
    piece.unlink()
    with path.open("wb") as out:
        for _ in range(max(1, round(mb * 1e6 / len(data)))):
            out.write(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 MB")
    parser.add_argument("--mb", type=float, default=None)
    args = parser.parse_args()
    mb = args.mb or (50.0 if args.quick else 200.0)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = root / "files"
        files.mkdir()
        formats = {"wav": ("wav", "wav", make_wav), "mp3": ("mp3_44100_128", "mp3", make_mp3)}
        for name, (_, ext, make) in formats.items():
            make(files / f"big.{ext}", mb)
            make(files / f"small.{ext}", 2.0)
        server = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind",
                                   "127.0.0.1", "--directory", str(files)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert server.stdout is not None
            banner = server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (...) ..."
            port = banner.split(" port ")[1].split()[0]
            base = f"http://127.0.0.1:{port}"
            for name, (spec, ext, _) in formats.items():
                size_mb = (files / f"big.{ext}").stat().st_size / 1e6
                result = subprocess.run(
                    [sys.executable, "-c", MEASURE, base, f"small.{ext}", f"big.{ext}", spec,
                     ext, str(root / f"cache-{name}")],
                    capture_output=True, text=True, check=False)
                if result.returncode != 0:
                    raise SystemExit(f"measuring {name} failed:\n{result.stderr[-3000:]}")
                m = json.loads(result.stdout.strip().splitlines()[-1])
                added = m["after"]["VmHWM"] - m["before"]["VmRSS"]
                anon = m["peak"]["RssAnon"] - m["before"]["RssAnon"]
                file_backed = m["peak"]["RssFile"] - m["before"]["RssFile"]
                good = added < 30
                ok &= good
                print(f"download: {name}, {size_mb:.0f} MB ({m['duration_s']:.0f} s of audio) "
                      f"in {m['seconds']:.2f} s ({size_mb / m['seconds']:.0f} MB/s)")
                rb.line("RSS before", f"{m['before']['VmRSS']:.1f} MB", "", None)
                rb.line("peak RSS added (VmHWM - before)", f"{added:.1f} MB", "< 30 MB", good)
                rb.line("  of which anonymous (sampled)", f"{anon:.1f} MB", "", None)
                rb.line("  of which file-backed (sampled)", f"{file_backed:.1f} MB", "", None)
        finally:
            server.terminate()
            server.wait(timeout=10)
            if server.stdout is not None:
                server.stdout.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
