"""Resume under fault injection: `dvc repro train` SIGKILLed mid-run ends bit-identical to an uninterrupted run.

Runs benchmarks/fault_injection.py small: two kills (one at a random moment, one during a
checkpoint write) of a real `dvc repro train` in a real git+DVC copy, then the final run.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.system


def test_a_pipeline_killed_twice_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    report = tmp_path / "fault_injection.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fault_injection.py"), "--kills", "2",
                             "--steps", "300", "--seed", "0", "--json", str(report)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    outcome = json.loads(report.read_text())
    assert outcome["identical"] and outcome["final"]["verdict"] == "identical", result.stdout[-4000:]
    kills = outcome["kills"]
    assert len(kills) == 2 and {k["mode"] for k in kills} == {"random", "checkpoint"}
    # the checkpoint kill comes after the run's 2nd write began: a real resume from a step > 0 followed
    resumed = [int(k["resumed_from"]) for k in kills if k["resumed_from"].isdigit()]
    assert any(step > 0 for step in resumed), kills
    assert all(k["verdict"] in ("identical", "no checkpoint yet") for k in kills), kills
