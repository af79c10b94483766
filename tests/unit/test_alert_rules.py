"""The alerting rules are valid and do what docs/OPERATIONS.md says, by promtool's own checks."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.unit

RULES = ROOT / "deploy" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is not installed: apt-get install prometheus")
    return subprocess.run(["promtool", *args], cwd=RULES, capture_output=True, text=True,
                          check=False)  # fmt: skip


def test_the_rules_are_valid() -> None:
    checked = _promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout


def test_each_alert_fires_on_trouble_and_stays_quiet_on_health() -> None:
    tested = _promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_runbook_entry() -> None:
    runbook = (ROOT / "docs" / "OPERATIONS.md").read_text()
    for line in (RULES / "alerts.yml").read_text().splitlines():
        if line.strip().startswith("- alert:"):
            assert f"`{line.split(':', 1)[1].strip()}`" in runbook
