"""A build full of hostile text, and the review app serving it: shared by the escaping
tests (tests/report/test_hostile_text.py) and their browser half
(tests/browser/test_hostile_text_browser.py).

Every free-text field a person or a provider fills goes in: the manifest's
description, a job's prompt and notes, a reviewer's note (through the review
app's own API), each with markup, quotes, ampersands, `</script>` and `<!--` (which
end or confuse a script element's text) and event handlers. Job ids and the
pipeline's name are restricted to letters, digits and `_.-/#` by the schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.report.review_app import ReviewApp
from runner.report.review_session import ReviewSession
from tests.engine.helpers import run, write_manifest
from tests.report.helpers import serving

PROMPT = ('</script><script>alert("prompt")</script><!-- <b onmouseover=\'alert(1)\'>'
          'bold</b> &amp; "double" \'single\'')
NOTES = '</textarea><img src=x onerror=alert("notes")> & "notes" \'n\''
DESCRIPTION = "<script>alert('description')</script> \"d\" & <i>italic</i>"
REVIEW_NOTE = '</script><svg onload=alert("note")> "r" & \'x\' <!--'
HOSTILE = (PROMPT, NOTES, DESCRIPTION, REVIEW_NOTE)


def make_hostile_build(folder: Path, sandbox_url: str) -> Path:
    """Run the build against the sandbox; returns the manifest."""
    manifest = write_manifest(folder, f"""
        - id: bell
          model: elevenlabs/sound-effect-v2
          variants: 2
          output: bell_{{variant}}.{{ext}}
          notes: {json.dumps(NOTES)}
          input: {{text: {json.dumps(PROMPT)}, duration_seconds: 1}}
    """, extra=f"description: {json.dumps(DESCRIPTION)}")
    code, _, _, tally = run(manifest, sandbox_url)
    assert code == 0, tally.failures
    return manifest


@contextmanager
def reviewing(manifest: Path) -> Iterator[str]:
    """The review app over the build in a thread on 127.0.0.1; yields its URL."""
    with serving(ReviewApp(ReviewSession(manifest, sandbox=True,
                                         reviewer="<b>tester</b>"))) as url:
        yield url
