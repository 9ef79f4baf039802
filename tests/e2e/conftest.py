"""One scratch workspace for all end-to-end tests of a session (its caches warm up once)."""

import pytest

from tests.conftest import require_tools
from tests.e2e.workspace import Workspace


@pytest.fixture(scope="session")
def ws(tmp_path_factory, tarball):
    require_tools("make", "gcc", "qemu-system-x86_64", "busybox", "cpio", "addr2line")
    base = tmp_path_factory.mktemp("e2e")
    w = Workspace(base / "repo", base / "state", tarball)
    yield w
    w.stop_pantsd()
