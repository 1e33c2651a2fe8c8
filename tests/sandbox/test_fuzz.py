"""Fuzz the sandbox with schemathesis over the provider documents in schemas/openapi/.

Every request the documents allow (positive mode: the examples, then generated
cases) must get an answer that is not a 5xx and whose body matches the schema the
document gives for that status. The sandbox runs in the faithful mode on a real
socket; kie's upload endpoints are fuzzed on the upload host, where the documents
send them. Bounded for CI: a few examples per operation (RUNNER_FUZZ_EXAMPLES
raises it), one worker, a fixed seed, so a failure reproduces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner.sandbox import SandboxServer

OPENAPI = Path(__file__).parents[2] / "schemas" / "openapi"
EXAMPLES = os.environ.get("RUNNER_FUZZ_EXAMPLES", "6")
UPLOADS = "^/api/file-(stream|base64|url)-upload$"
# (document, which host, which of its paths)
RUNS = [
    ("market/common.yaml", "api", ("--exclude-path-regex", UPLOADS)),
    ("market/common.yaml", "uploads", ("--include-path-regex", UPLOADS)),
    ("market/elevenlabs-sound-effect-v2.yaml", "api", ()),
    ("market/elevenlabs-text-to-speech-turbo-2-5.yaml", "api", ()),
    ("market/elevenlabs-speech-to-text.yaml", "api", ()),
    ("aimlapi/stable-audio.yaml", "api", ()),
    ("elevenlabs/elevenlabs.yaml", "api", ()),
]


def schemathesis_cli() -> list[str]:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("schemathesis is a test dependency (pip install -e '.[test]')")
    return [found]


@pytest.mark.parametrize(("document", "host", "paths"), RUNS,
                         ids=[f"{doc}@{host}" for doc, host, _ in RUNS])
def test_no_5xx_and_every_answer_as_documented(sandbox: SandboxServer, tmp_path: Path,
                                               document: str, host: str,
                                               paths: tuple[str, ...]) -> None:
    base = sandbox.upload_url if host == "uploads" else sandbox.url
    command = [
        *schemathesis_cli(), "run", str(OPENAPI / document), "--url", base,
        "--header", "Authorization: Bearer fuzz-key", "--header", "xi-api-key: fuzz-key",
        "--mode", "positive", "--phases", "examples,fuzzing", "--max-examples", EXAMPLES,
        "--seed", "1", "--workers", "1", "--no-shrink", "--request-timeout", "60",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--suppress-health-check", "all", "--warnings", "off", *paths,
    ]
    # Its config and reports stay in the test's folder, never the checkout.
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_COLOR": "1"}, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    stats = sandbox.sandbox.state.stats.snapshot()["requests"]
    answered = sum(n for endpoint, codes in stats.items() if "/_sandbox/" not in endpoint
                   for n in codes.values())
    assert answered >= 2, stats  # it did reach the sandbox
    server_errors = {endpoint: codes for endpoint, codes in stats.items()
                     if any(code.startswith("5") for code in codes)}
    assert not server_errors
