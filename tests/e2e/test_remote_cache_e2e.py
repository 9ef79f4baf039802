"""End to end: a real BuildGrid REAPI server on loopback serves kernel builds to a second
checkout at another path, with its own local store, named caches and HOME; and a cache server
that is down never breaks a build."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.workspace import REPO, Workspace

TARGET = "examples/minimal:kernel"
ARTIFACTS = Path("dist/examples.minimal/kernel")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def buildgrid(tmp_path_factory):
    setup = subprocess.run([str(REPO / "third_party/buildgrid/setup.sh")], capture_output=True,
                           text=True, timeout=600)
    if setup.returncode != 0:
        pytest.fail(f"installing BuildGrid failed:\n{setup.stderr[-2000:]}")
    bgd = setup.stdout.strip().splitlines()[-1]
    state = tmp_path_factory.mktemp("buildgrid")
    port = _free_port()
    config = (REPO / "third_party/buildgrid/cache-only.yml").read_text()
    config = config.replace("@PORT@", str(port)).replace("@STORAGE@", str(state / "cas"))
    (state / "cas").mkdir()
    (state / "config.yml").write_text(config)
    log = open(state / "bgd.log", "w")
    server = subprocess.Popen([bgd, "server", "start", str(state / "config.yml")], stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, (state / "bgd.log").read_text()
            time.sleep(0.5)
    else:
        pytest.fail("BuildGrid did not start listening within 60 s")
    yield f"grpc://127.0.0.1:{port}"
    os.killpg(server.pid, 15)
    server.wait(timeout=30)
    log.close()


def _remote_flags(address: str, read: bool, write: bool) -> list:
    return [f"--remote-store-address={address}", "--remote-instance-name=main",
            f"--{'' if read else 'no-'}remote-cache-read",
            f"--{'' if write else 'no-'}remote-cache-write", "--stats-log", "--no-pantsd"]


def _counter(output: str, name: str) -> int:
    m = re.search(rf"^\s*{name}: (\d+)$", output, re.M)
    return int(m.group(1)) if m else 0


def test_second_checkout_is_served_from_the_remote_cache(ws, buildgrid, tmp_path, tarball):
    # Checkout A (another path, empty local store, the session's warm trees) fills the cache.
    a = Workspace(tmp_path / "checkout-a", tmp_path / "state-a", tarball)
    shutil.rmtree(a.named_caches, ignore_errors=True)
    a.named_caches = ws.named_caches
    first = a.pants(*_remote_flags(buildgrid, read=False, write=True), "package", TARGET)
    assert first.returncode == 0, first.output[-4000:]
    assert "Starting: Build kernel" in first.output  # it really ran, and was uploaded

    # Checkout B: another path, its own store, named caches and HOME, nothing local.
    b = Workspace(tmp_path / "elsewhere/checkout-b", tmp_path / "state-b", tarball)
    home = tmp_path / "home-b"
    home.mkdir()
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        second = b.pants(*_remote_flags(buildgrid, read=True, write=False), "package", TARGET)
    finally:
        if old_home is not None:
            os.environ["HOME"] = old_home
    assert second.returncode == 0, second.output[-4000:]
    assert _counter(second.output, "remote_cache_requests_cached") >= 3, second.output[-3000:]
    # No kernel was configured or built here: Kbuild never unpacked the source or made a tree.
    assert not (b.kernel_cache / "sources").exists()
    assert not (b.kernel_cache / "trees").exists()
    for name in ("bzImage", "vmlinux", "config", "defconfig", "System.map"):
        assert (a.root / ARTIFACTS / name).read_bytes() == (b.root / ARTIFACTS / name).read_bytes()
    assert second.seconds < 0.25 * first.seconds + 20


def test_a_cache_server_that_is_down_does_not_break_the_build(ws, tmp_path, tarball):
    c = Workspace(tmp_path / "checkout-c", tmp_path / "state-c", tarball)
    c.named_caches = ws.named_caches
    dead = f"grpc://127.0.0.1:{_free_port()}"
    result = c.pants(*_remote_flags(dead, read=True, write=True), "package", TARGET)
    assert result.returncode == 0, result.output[-4000:]
    assert (c.root / ARTIFACTS / "bzImage").exists()
    # ... and the local caches it wrote are sound: the same package again is a local hit.
    again = c.pants("--no-pantsd", "package", TARGET)
    assert again.returncode == 0 and "Starting: Build kernel" not in again.output
