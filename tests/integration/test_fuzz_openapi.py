"""Schema-driven fuzzing of the running API with Schemathesis: every check, every phase
(examples, coverage, fuzzing, stateful through the document's links). A request the document
calls valid is taken, one it calls invalid refused, no answer is a 5xx, and every answer matches
the document. `schemathesis.toml` beside this file lists, each with its reason, the rules the
document cannot state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Stack
from tests.processes import api_server, service_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CONFIG = Path(__file__).with_name("schemathesis.toml")
PHASES = "examples,coverage,fuzzing,stateful"


def test_the_api_keeps_its_openapi_contract(stack: Stack, tmp_path: Path) -> None:
    # An API of its own on the stack's Redis and worker, whose long-polls last 2 s at most: the
    # fuzzer asks for every `wait` the document allows, and waits out each.
    env = service_env(stack.redis.url, MAX_WAIT_SECONDS="2")
    with api_server(env, tmp_path / "api.log") as api:
        command = [str(Path(sys.executable).with_name("schemathesis")), "--no-color",
                   "--config-file", str(CONFIG), "run", f"{api}/openapi.json",
                   "--phases", PHASES, "--max-examples", "20", "--seed", "1"]  # fmt: skip
        # In tmp_path: Schemathesis keeps its cache of failing cases in the working directory.
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                             timeout=540, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-2_000:]
    assert "Stateful" in run.stdout
