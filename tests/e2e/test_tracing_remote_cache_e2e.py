"""End to end: a real BuildGrid REAPI server on loopback serves a kernel's whole pipeline (base
config, configure, Kbuild) to a second checkout at another path, with its own local store, named
caches and HOME; and a cache server that is down, or stops mid-run, never breaks a build.

The kernel is the smallest example (tinyconfig), for the suite's time: traces, maps and
composition are processes of the same kind and go through the same cache, but no trace is
served remotely here. Checkouts share the session's warm Kbuild trees, so each build here is
incremental."""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.remote_cache import buildgrid_server, free_port, remote_flags, stats_counter
from tests.e2e.workspace import Workspace

TARGET = "examples/minimal:kernel"
ARTIFACTS = Path("dist/examples.minimal/kernel")


@pytest.fixture(scope="module")
def buildgrid(tmp_path_factory):
    try:
        with buildgrid_server(tmp_path_factory.mktemp("buildgrid")) as address:
            yield address
    except RuntimeError as e:
        pytest.fail(str(e))


def test_second_checkout_is_served_from_the_remote_cache(ws, buildgrid, tmp_path, tarball):
    # Checkout A (another path, empty local store, the session's warm trees) fills the cache.
    a = Workspace(tmp_path / "checkout-a", tmp_path / "state-a", tarball)
    shutil.rmtree(a.named_caches, ignore_errors=True)
    a.named_caches = ws.named_caches
    first = a.pants(*remote_flags(buildgrid, read=False, write=True), "package", TARGET)
    assert first.returncode == 0, first.output[-4000:]
    # it really ran, and was uploaded
    assert "Starting: Build kernel" in first.output

    # Checkout B: another path, its own store, named caches and HOME, nothing local.
    b = Workspace(tmp_path / "elsewhere/checkout-b", tmp_path / "state-b", tarball)
    home = tmp_path / "home-b"
    home.mkdir()
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        second = b.pants(*remote_flags(buildgrid, read=True, write=False), "package", TARGET)
    finally:
        if old_home is not None:
            os.environ["HOME"] = old_home
    assert second.returncode == 0, second.output[-4000:]
    # From the cache: the base config, the configure and the kernel build.
    assert stats_counter(second.output, "remote_cache_requests_cached") >= 3, second.output[-3000:]
    for step in ("Make base config", "Configure kernel", "Build kernel"):
        assert f"Starting: {step}" not in second.output, step
    # No kernel was configured or built here: Kbuild never unpacked the source or made a tree.
    assert not (b.kernel_cache / "sources").exists()
    assert not (b.kernel_cache / "trees").exists()
    for name in ("bzImage", "vmlinux", "config", "defconfig", "System.map", "layout.json"):
        assert (a.root / ARTIFACTS / name).read_bytes() == (b.root / ARTIFACTS / name).read_bytes()


def test_a_cache_server_that_is_down_does_not_break_the_build(ws, tmp_path, tarball):
    c = Workspace(tmp_path / "checkout-c", tmp_path / "state-c", tarball)
    c.named_caches = ws.named_caches
    dead = f"grpc://127.0.0.1:{free_port()}"
    result = c.pants(*remote_flags(dead, read=True, write=True), "package", TARGET)
    assert result.returncode == 0, result.output[-4000:]
    assert (c.root / ARTIFACTS / "bzImage").exists()
    # ... and the local caches it wrote are sound: the same package again is a local hit.
    again = c.pants("--no-pantsd", "package", TARGET)
    assert again.returncode == 0 and "Starting: Build kernel" not in again.output


def test_a_cache_server_that_stops_mid_run_does_not_break_the_build(ws, tmp_path, tarball):
    d = Workspace(tmp_path / "checkout-d", tmp_path / "state-d", tarball)
    d.named_caches = ws.named_caches
    fragment = d.root / "examples/minimal/boot.config"
    # not cached anywhere; a leaf (fs/signalfd.o), but the build still takes far longer than 15 s
    fragment.write_text(fragment.read_text() + "CONFIG_SIGNALFD=y\n")
    with buildgrid_server(tmp_path / "buildgrid-d") as address:
        with ThreadPoolExecutor(1) as pool:
            run = pool.submit(
                d.pants, *remote_flags(address, read=True, write=True), "package", TARGET
            )
            time.sleep(15)
            assert not run.done(), "the build finished before the server could be stopped"
    result = run.result()  # the server is gone now, while the build still runs
    assert result.returncode == 0, result.output[-4000:]
    assert "Traceback (most recent call last)" not in result.output
    again = d.pants("--no-pantsd", "package", TARGET)
    assert again.returncode == 0 and "Starting: Build kernel" not in again.output
