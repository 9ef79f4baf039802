"""One scratch workspace for all end-to-end tests of a session (its caches warm up once)."""

import pytest

from tests.conftest import require_tools
from tests.e2e.workspace import Workspace

# Modules that must build their kernels before any other module builds the same configurations:
# test_tailored_e2e measures what Kbuild recompiles when apps are added, which a Pants cache hit
# (the same configuration packaged by an earlier module) would hide. Later modules then reuse
# its kernels from the cache.
RUN_FIRST = ("test_tailored_e2e.py",)


def pytest_collection_modifyitems(session, config, items):
    def first(item) -> int:
        name = item.path.name
        return RUN_FIRST.index(name) if name in RUN_FIRST else len(RUN_FIRST)

    items.sort(key=first)  # stable: every other test keeps its place


@pytest.fixture(scope="session")
def ws(tmp_path_factory, tarball):
    require_tools("make", "gcc", "qemu-system-x86_64", "busybox", "cpio", "addr2line")
    base = tmp_path_factory.mktemp("e2e")
    w = Workspace(base / "repo", base / "state", tarball)
    yield w
    w.stop_pantsd()
