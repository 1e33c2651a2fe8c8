"""Sound effects and music: seeded sequences of procedural texture clips.

Textures are half-second sounds (noise washes, tones, sweeps, impacts, chords)
made once in pure Python and then served from the clip library in any format.
A request's seed picks the sequence, so the same request gives the same file and
each variant a different one; words in the prompt tilt the choice (a "rain"
prompt gets more noise, a "beep" more tones), which is all the meaning a
sandbox owes its prompts.
"""

from __future__ import annotations

import math
import random
from array import array

from runner.sandbox.clips import SOURCE_RATE, ClipKey
from runner.sandbox.render import Plan

TEXTURE_S = 0.5
_VARIANTS = 6  # textures per kind
_KINDS = ("noise", "tone", "sweep", "impact", "rumble")
_HINTS = {
    "noise": ("rain", "wind", "water", "static", "crowd", "applause", "fire", "steam", "hiss"),
    "tone": ("beep", "chime", "bell", "alarm", "ding", "synth", "ring", "notification"),
    "sweep": ("whoosh", "laser", "rise", "zap", "swoosh", "riser", "sci-fi", "magic"),
    "impact": ("hit", "door", "slam", "knock", "footstep", "punch", "crash", "explosion", "drum"),
    "rumble": ("thunder", "engine", "earthquake", "braam", "bass", "rumble", "motor", "cinematic"),
}
_CHORDS = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (9, 12, 16), (2, 5, 9), (4, 7, 11))


def all_clips(kind: str) -> tuple[ClipKey, ...]:
    """Every texture (or chord) clip: encoded together, the first time one is needed."""
    if kind == "music":
        return tuple(("m", str(c), str(b)) for c in range(len(_CHORDS)) for b in range(2))
    return tuple(("t", k, str(v)) for k in _KINDS for v in range(_VARIANTS))


def derived_duration_s(prompt: str) -> float:
    """Length chosen 'from the prompt' when none is asked: longer prompts, longer sounds."""
    words = len(prompt.split())
    return round(min(10.0, max(1.0, 1.5 + 0.35 * words)), 1)


def sfx_plan(prompt: str, duration_s: float, seed: int) -> Plan:
    rng = random.Random(seed)
    lowered = prompt.lower()
    weights = [1 + 4 * sum(h in lowered for h in _HINTS[kind]) for kind in _KINDS]
    count = math.ceil(duration_s / TEXTURE_S) + 1
    keys: list[ClipKey] = [
        ("t", rng.choices(_KINDS, weights)[0], str(rng.randrange(_VARIANTS))) for _ in range(count)
    ]
    return Plan(tuple(keys), total_s=duration_s)


def music_plan(prompt: str, duration_s: float, seed: int) -> Plan:
    rng = random.Random(seed)
    tempo = 2 if "slow" in prompt.lower() or "ambient" in prompt.lower() else 1
    progression = [rng.randrange(len(_CHORDS)) for _ in range(4)]
    count = math.ceil(duration_s / TEXTURE_S) + 1
    keys: list[ClipKey] = [
        ("m", str(progression[(i // (4 * tempo)) % 4]), str(i % 2)) for i in range(count)
    ]
    return Plan(tuple(keys), total_s=duration_s)


def produce_texture(key: ClipKey) -> bytes:
    """Clip producer for ("t", kind, variant)."""
    _, kind, variant = key
    rng = random.Random(f"{kind}:{variant}")
    n = int(TEXTURE_S * SOURCE_RATE)
    out = array("h", bytes(2 * n))
    if kind == "noise":
        level, smooth = 0.0, rng.uniform(0.05, 0.6)
        for i in range(n):
            level += smooth * (rng.uniform(-1, 1) - level)
            out[i] = int(9000 * level * _fade(i, n))
    elif kind == "tone":
        freq = float(rng.choice((440, 523, 659, 784, 880, 1047)))
        for i in range(n):
            env = math.exp(-3 * i / n) * _fade(i, n)
            out[i] = int(7000 * env * math.sin(2 * math.pi * freq * i / SOURCE_RATE))
    elif kind == "sweep":
        f0, f1 = rng.choice(((200.0, 2000.0), (2000.0, 300.0), (400.0, 1200.0)))
        phase = 0.0
        for i in range(n):
            phase += 2 * math.pi * (f0 + (f1 - f0) * i / n) / SOURCE_RATE
            out[i] = int(6000 * math.sin(phase) * _fade(i, n))
    elif kind == "impact":
        freq = rng.uniform(50, 120)
        for i in range(n):
            env = math.exp(-12 * i / n)
            noise = rng.uniform(-1, 1) * math.exp(-40 * i / n)
            body = math.sin(2 * math.pi * freq * i / SOURCE_RATE)
            out[i] = int(14000 * env * (0.6 * body + 0.4 * noise))
    else:  # rumble
        freq = rng.uniform(35, 70)
        for i in range(n):
            wobble = 1 + 0.3 * math.sin(2 * math.pi * 3 * i / SOURCE_RATE)
            out[i] = int(9000 * wobble * math.sin(2 * math.pi * freq * i / SOURCE_RATE)
                         * _fade(i, n))
    return out.tobytes()


def produce_chord(key: ClipKey) -> bytes:
    """Clip producer for ("m", chord, beat): a half-second of a chord, a kick on beat 0."""
    _, chord, beat = key
    n = int(TEXTURE_S * SOURCE_RATE)
    freqs = [220 * 2 ** (step / 12) for step in _CHORDS[int(chord)]]
    out = array("h", bytes(2 * n))
    for i in range(n):
        t = i / SOURCE_RATE
        pad = sum(math.sin(2 * math.pi * f * t) for f in freqs) / len(freqs)
        kick = math.sin(2 * math.pi * (60 - 30 * t) * t) * math.exp(-20 * t) if beat == "0" else 0
        out[i] = int(8000 * pad * _fade(i, n, 0.02) + 12000 * kick)
    return out.tobytes()


def _fade(i: int, n: int, fraction: float = 0.05) -> float:
    """A short fade at both ends so that texture boundaries do not click."""
    edge = max(1, int(n * fraction))
    return min(1.0, i / edge, (n - 1 - i) / edge)
