"""How the two interview recordings here were made (kept for provenance).

They are synthetic: two voices of the sandbox's text to speech (espeak-ng)
taking turns, joined and re-encoded with ffmpeg so that no sandbox marker
survives (the transcript then comes from the audio alone, as with a real
recording). Run from the repository root: python pipelines/audio/make_interviews.py
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import httpx

from runner.audio.ffmpeg import ffmpeg_exe
from runner.sandbox import SandboxConfig, SandboxServer
from runner.sandbox.speech import VOICE_IDS

HERE = Path(__file__).parent
INTERVIEWS = {
    "interview_harbour_master": [
        ("Daniel", "So you were on duty at the harbour that night?"),
        ("George", "I was. The storm came in two hours early, and the radio never stopped."),
        ("Daniel", "When did you first hear about the Margaret Ann?"),
        ("George", "A quarter past nine. Engine failure, three miles out, drifting east."),
        ("Daniel", "And the lifeboat?"),
        ("George", "Forty minutes, at the very least. We all knew where the reef was."),
    ],
    "interview_lifeboat_crew": [
        ("Lily", "What did you see when you came round the point?"),
        ("Charlie", "A red light, in the lighthouse gallery. Nobody had used one in years."),
        ("Lily", "Did you understand what it meant?"),
        ("Charlie", "Every skipper on this coast knows it. Not here. Turn."),
        ("Lily", "And the boat was clear of the reef?"),
        ("Charlie", "Anchored in deep water, the whole crew soaked and swearing and alive."),
    ],
}


def main() -> None:
    with SandboxServer(SandboxConfig()) as url, tempfile.TemporaryDirectory() as tmp:
        client = httpx.Client(base_url=url, headers={"xi-api-key": "sandbox"})
        for name, turns in INTERVIEWS.items():
            parts = []
            for i, (voice, text) in enumerate(turns):
                response = client.post(f"/v1/text-to-speech/{VOICE_IDS[voice]}",
                                       params={"output_format": "pcm_22050"},
                                       json={"text": text, "model_id": "eleven_turbo_v2_5"})
                response.raise_for_status()
                part = Path(tmp) / f"{name}_{i}.pcm"
                part.write_bytes(response.content + b"\0\0" * 11025)  # half a second between turns
                parts.append(part)
            joined = Path(tmp) / f"{name}.pcm"
            joined.write_bytes(b"".join(p.read_bytes() for p in parts))
            subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "s16le", "-ar", "22050",
                            "-ac", "1", "-i", str(joined), "-map_metadata", "-1", "-c:a",
                            "libmp3lame", "-b:a", "48k", str(HERE / f"{name}.mp3")], check=True)
            print(f"wrote {HERE / f'{name}.mp3'}")


if __name__ == "__main__":
    main()
