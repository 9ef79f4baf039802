"""Shared fixtures: the repository, the pinned tarball, and session-wide kernel caches."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _lock_value(key: str) -> str:
    text = (REPO / "third_party/linux/linux-source.lock").read_text()
    return re.search(rf"^{key}=(.*)$", text, re.M).group(1)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tarball() -> Path:
    path = REPO / "third_party/linux" / Path(_lock_value("path_in_package")).name
    if not path.exists():
        pytest.fail(f"{path} is missing: run ./pants --version once to set up")
    return path


@pytest.fixture(scope="session")
def tarball_sha256() -> str:
    return _lock_value("sha256")


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kernel_rules")


def host_python() -> str:
    """The python3 the product's processes use (the first on the default search path)."""
    return shutil.which("python3", path="/usr/bin:/bin") or sys.executable


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t, path="/usr/bin:/bin:/usr/sbin:/sbin")]
    if missing:
        pytest.fail(f"missing host tools {missing}: run ./pants --version as root to install them")


@pytest.fixture(scope="session")
def kernel_srctree(tarball, tarball_sha256, tmp_path_factory) -> Path:
    """The pinned kernel source, unpacked once per test session (read-only: do not modify)."""
    from kernel_rules.domain.build.warm_trees import unpack_source

    cache = tmp_path_factory.mktemp("srctree-cache")
    return Path(unpack_source(str(cache), str(tarball), tarball_sha256))
