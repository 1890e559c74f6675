"""deploy/prometheus passes promtool: config and rules check, and the rule unit tests pass.

The unit tests (deploy/prometheus/tests/*.yml) show each alert firing on synthetic series and
staying quiet when it should. CI installs promtool (Debian package ``prometheus``, see
scripts/test.sh); without it these tests are skipped, saying so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
RULE_FILES = sorted((DEPLOY / "rules").glob("*.yml"))
TEST_FILES = sorted((DEPLOY / "tests").glob("*.yml"))

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (apt-get install prometheus; scripts/test.sh does it)",
)


def promtool(*args: str) -> str:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=240,
                          check=False, cwd=DEPLOY)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_the_deploy_files_are_there() -> None:
    assert {p.name for p in RULE_FILES} == {"latency.yml", "slo.yml", "alerts.yml"}
    assert TEST_FILES
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert sorted(config["rule_files"]) == sorted(f"rules/{p.name}" for p in RULE_FILES)


def test_every_alert_is_unit_tested_firing() -> None:
    alerts = {
        rule["alert"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts == firing, f"alerts without a firing test: {alerts - firing}"
    assert alerts == quiet, f"alerts without a quiet test: {alerts - quiet}"


@needs_promtool
def test_promtool_check_rules_and_config() -> None:
    out = promtool("check", "rules", *(str(p) for p in RULE_FILES))
    assert "SUCCESS" in out
    promtool("check", "config", "prometheus.yml")


@needs_promtool
def test_promtool_rule_unit_tests() -> None:
    out = promtool("test", "rules", *(str(p.relative_to(DEPLOY)) for p in TEST_FILES))
    assert "FAILED" not in out
