"""The CI entry point runs the README's test command, and a failing test fails it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_script_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in script
    assert "make test" in script
    assert "make test" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("body, expected", [("assert 1 + 1 == 2", 0), ("assert 1 + 1 == 3", 1)])
def test_make_pytest_propagates_pytest_exit_code(tmp_path, body, expected):
    (tmp_path / "test_probe.py").write_text(f"def test_probe():\n    {body}\n")
    venv = Path(sys.prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    r = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(ROOT), "pytest", f"VENV={venv}",
         f"PYTEST_ARGS={tmp_path / 'test_probe.py'} -p no:cacheprovider -q --rootdir={tmp_path}"],
        capture_output=True, text=True, env=env,
    )
    assert (r.returncode == 0) == (expected == 0), r.stdout + r.stderr
