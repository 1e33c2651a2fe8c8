"""Text: splitting narrations, subtitles, transcripts, and word error rate.

    split.py        a long text into TTS requests at paragraph, sentence, clause ends
    subtitles.py    word timings to SRT/WebVTT cues
    transcripts.py  speech-to-text results to JSON, text, SRT and WebVTT files
    wer.py          word error rate of a transcript against its text
"""
