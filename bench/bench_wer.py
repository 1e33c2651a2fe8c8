"""Benchmark: the transcript check's word error rate, per narration segment.

    python bench/bench_wer.py                 # 1,500 and 5,000 characters, all kinds
    python bench/bench_wer.py --chars 1500 --repeat 20

A narration's segments are at most `max_chars` long (1,500 by default, 5,000 at
most: the TTS APIs' limit), and the check compares each one's text with what the
speech-to-text model heard. For each length and each kind of transcript (exact;
5 % of the words wrong, as a good recogniser does; 30 %, a poor take; an
unrelated text, the worst case, as when the wrong voice or language speaks), it
prints the milliseconds per segment of:

  own      runner.text.wer.word_errors as it is (normalise, then one weighted
           rapidfuzz distance that yields substitutions, deletions and insertions;
           the pure-Python table it replaced took 80-900 ms: commit 5073d51)
  distance the word distance alone with rapidfuzz (C++), on the runner's words
  jiwer    jiwer.process_words on the runner's words (rapidfuzz underneath, plus
           its own word-to-id mapping and alignment chunks)
  normal   normalise_words of both texts: the part no library replaces

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.text import wer as runner_wer

WORDS = ("the a of and to in is was that for it with as his on be at by had not "
              "are but from or have an they which one you were her all she there would "
              "their we him been has when who will more no if out so said what up its "
              "about into than them can only other new some could time these two may "
              "then do first any my now such like our over man me even most made after "
              "also did many before must through back years where much your way well "
              "down should because each just those people how too little state good "
              "very make world still own see men work long get here between both life "
              "being under never day same another know while last might us great old "
              "year off come since against go came right used take three lighthouse "
              "keeper harbour storm lantern evening morning whispered O'Neil Dr. Smith's "
              "—")
VOCABULARY = WORDS.split()


def text_of(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(VOCABULARY)
        if rng.random() < 0.08:
            word += rng.choice(",.;?!")
        if rng.random() < 0.05:
            word = word.capitalize()
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:chars]


def garble(rng: random.Random, text: str, rate: float) -> str:
    """`rate` of the words substituted, dropped or doubled, spread over the text."""
    out: list[str] = []
    for word in text.split():
        roll = rng.random()
        if roll >= rate:
            out.append(word)
        elif roll < rate / 2:
            out.append(rng.choice(VOCABULARY) + "x")  # substituted
        elif roll < rate * 3 / 4:
            continue  # dropped
        else:
            out.extend([word, rng.choice(VOCABULARY)])  # one inserted
    return " ".join(out)


def per_call_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chars", type=int, nargs="+", default=[1500, 5000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from rapidfuzz.distance import Levenshtein

    try:
        import jiwer
    except ImportError:
        jiwer = None

    rng = random.Random(15)
    print(f"{'chars':>6} {'words':>6} {'transcript':<10} {'own':>9} {'distance':>9} "
          f"{'jiwer':>9} {'normal':>9}   (ms per segment, median of {args.repeat})")
    for chars in args.chars:
        reference = text_of(rng, chars)
        kinds = {"exact": reference, "5% wrong": garble(rng, reference, 0.05),
                 "30% wrong": garble(rng, reference, 0.30),
                 "unrelated": text_of(rng, chars)}
        for kind, heard in kinds.items():
            ref = runner_wer.normalise_words(reference)
            hyp = runner_wer.normalise_words(heard)
            own = per_call_ms(lambda: runner_wer.word_errors(reference, heard), args.repeat)  # noqa: B023
            distance = per_call_ms(lambda: Levenshtein.distance(ref, hyp), args.repeat)  # noqa: B023
            normal = per_call_ms(lambda: (runner_wer.normalise_words(reference),  # noqa: B023
                                          runner_wer.normalise_words(heard)), args.repeat)  # noqa: B023
            jiwer_ms = float("nan")
            if jiwer is not None:
                ref_text, hyp_text = " ".join(ref), " ".join(hyp)
                jiwer_ms = per_call_ms(lambda: jiwer.process_words(ref_text, hyp_text), args.repeat)  # noqa: B023
            print(f"{chars:>6} {len(ref):>6} {kind:<10} {own:>9.2f} {distance:>9.3f} "
                  f"{jiwer_ms:>9.3f} {normal:>9.3f}")


if __name__ == "__main__":
    main()
