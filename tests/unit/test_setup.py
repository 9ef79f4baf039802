"""The setup script's own checks, run for real in a scratch copy of the repository."""

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _scratch(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(
        REPO / "third_party",
        root / "third_party",
        ignore=shutil.ignore_patterns("*.tar.xz", "*.partial"),
    )
    shutil.copy(REPO / "pants", root / "pants")
    return root


def test_missing_python39_is_a_clear_error(tmp_path):
    root = _scratch(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KERNEL_RULES_PYTHON": "/nonexistent"}
    proc = subprocess.run(
        [str(root / "pants"), "--version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "Python 3.9 is required" in proc.stderr and "KERNEL_RULES_PYTHON" in proc.stderr
    assert not (root / ".venv").exists() or not (root / ".venv/bin/pants").exists()


def test_check_mode_fails_fast_when_not_set_up(tmp_path):
    root = _scratch(tmp_path)
    proc = subprocess.run(
        [str(root / "third_party/setup.sh"), "--check"],
        capture_output=True,
        timeout=10,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
