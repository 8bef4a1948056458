"""`python -m trainer doctor`: what a machine offers, asked by the preflight before a run folder exists."""

from __future__ import annotations

import json

from tests.cli_helpers import trainer_cli


def test_doctor_reports_the_disk_of_a_run_folder_not_made_yet(tmp_path):
    missing = tmp_path / "share" / "runs" / "new-run"  # the preflight asks before the run folder is made
    result = trainer_cli("doctor", "--json", "--path", str(missing))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["disk"]["path"] == str(tmp_path) and report["disk"]["free_gb"] > 0
    assert report["trainer_version"] and report["torch"]
