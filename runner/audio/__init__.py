"""Audio files: what they are, checking them, decoding, stitching, loudness, processing.

    formats.py     provider format names (`mp3_44100_128`, `pcm_24000`...), WAV wrapping
    containers.py  RIFF/WAVE and Ogg Opus walked in pure Python
    mp3frames.py   every MP3 frame header walked, for verification without a decoder
    verify.py      is a file the audio it claims to be (run on every download); sniffing
    ffmpeg.py      finding an ffmpeg binary (imageio-ffmpeg's when none is installed)
    decode.py      decoding through ffmpeg, without ffprobe
    pcm.py         edits on 16-bit samples: trim, fades, loop crossfades
    loudness.py    EBU R128 measurement and two-pass normalisation with a true-peak limiter
    steps.py       post-processing steps as data; process.py carries them out
    stitch.py      narration segments joined into one programme

Knows nothing of manifests or runs: the stages above hand it paths, bytes and formats.
"""
