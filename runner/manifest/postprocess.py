"""Per-job post-processing for game assets, as the manifest declares it.

    postprocess:
      trim_silence: true              # or {threshold_dbfs: -50, keep_ms: 40}
      loop_crossfade_ms: 120          # a seamless loop: the tail crossfaded into the head
      fade_in_ms: 5
      fade_out_ms: 80
      normalize: {lufs: -18, true_peak: -1}
      convert: {format: ogg, sample_rate: 48000, channels: 2}

Steps run in that order, whatever order the manifest lists them in: the file is
decoded at the rate and channel count `convert` asks for (so loudness is
measured as it will be heard), trimmed, looped, faded, normalised (two-pass,
true-peak limited: runner.audio.loudness) and encoded.

The steps are part of the job's cache key, but not of the request's: a job with
post-processing has two keys, `raw_key` (what was asked of the provider, as
for any job) and its own key (the raw key and the steps). The provider's result
stays in the cache under the raw key, so changing a step reprocesses that take
and never buys the request again (runner/audio/process.py does the work).

This module reads the declaration (the steps themselves are runner.audio.steps): it
is imported while a manifest loads, so it imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.audio.loudness import Target
from runner.audio.steps import Convert, PostProcess

if TYPE_CHECKING:
    from runner.catalog.models import ModelInfo

def parse(raw: dict[str, Any]) -> PostProcess:
    """A `postprocess:` mapping that the pipeline schema has accepted."""
    trim = raw.get("trim_silence", False)
    trim_options = trim if isinstance(trim, dict) else {}
    normalize = raw.get("normalize")
    convert = raw.get("convert") or {}
    return PostProcess(
        trim_silence=bool(trim),
        silence_threshold_dbfs=float(trim_options.get("threshold_dbfs", -50.0)),
        keep_silence_ms=int(trim_options.get("keep_ms", 40)),
        loop_crossfade_ms=int(raw.get("loop_crossfade_ms", 0)),
        fade_in_ms=int(raw.get("fade_in_ms", 0)),
        fade_out_ms=int(raw.get("fade_out_ms", 0)),
        normalize=Target(float(normalize["lufs"]), float(normalize.get("true_peak", -1.0)))
        if isinstance(normalize, dict) and "lufs" in normalize else None,
        convert=Convert(convert.get("format"), convert.get("sample_rate"),
                        convert.get("channels")),
    )


def declared(template: dict[str, Any], defaults: dict[str, Any], model: ModelInfo,
             programme: bool) -> tuple[PostProcess | None, str | None]:
    """The job's post-processing (its own `postprocess` over `defaults.postprocess`), and
    a problem when it asks for what cannot be done. Defaults apply only where they can:
    a narration, a dialogue or a transcript is left alone by them."""
    own = template.get("postprocess")
    shared = defaults.get("postprocess")
    if own is not None and (programme or not model.makes_audio):
        what = "a narration or dialogue (set loudness_lufs on it instead)" if programme \
            else f"{model.id}, which makes {model.kind.value.replace('_', ' ')}"
        return None, f"postprocess is for single audio assets, not for {what}"
    if programme or not model.makes_audio:
        return None, None
    merged: dict[str, Any] = {}
    for source in (shared, own):
        if isinstance(source, dict):
            for name, value in source.items():
                if isinstance(value, dict) and isinstance(merged.get(name), dict):
                    merged[name] = {**merged[name], **value}
                else:
                    merged[name] = value
    if not merged:
        return None, None
    try:
        return parse(merged), None
    except (TypeError, ValueError, KeyError):
        return None, None  # the structure check has reported the malformed value


def raw_of(payload: Any) -> dict[str, str] | None:
    """The provider's result behind a processed asset, from its journal payload (what the
    lockfile keeps: the raw key and sha256); None for any other asset."""
    raw = payload.get("raw") if isinstance(payload, dict) else None
    if not isinstance(raw, dict) or not raw.get("key") or not raw.get("sha256"):
        return None
    return {"key": str(raw["key"]), "sha256": str(raw["sha256"])}
