"""End to end, for real: the shared object cache (`[kernel-build].object_cache`, ccache with a
Redis server from Debian) lets a fresh runner reuse objects compiled for another configuration.

Runner A (empty local store and named caches) builds `examples/minimal:kernel` through the cache.
Runner B, at another path, with its own empty store, named caches and HOME, builds the same kernel
plus SIGNALFD (a leaf: fs/signalfd.o and what the syscall table changes): Kbuild runs every
compile in B's new tree, and ccache compiles only objects within Kbuild's lower bound of the
delta from A's configuration (what A's warm tree would recompile). B's kernel is byte-identical
to the one A's warm tree builds for the same configuration without the cache.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kernel_rules.domain.build.kbuild import LAST_BUILD, object_files
from kernel_rules.domain.build.kbuild_deps import (
    changed_files,
    changed_symbols,
    generated_digests,
    lower_bound,
    object_deps,
)
from kernel_rules.domain.kconfig.fragments import parse_config
from tests.e2e.remote_cache import redis_server
from tests.e2e.workspace import Workspace

TARGET = "examples/minimal:kernel"
DIST = Path("dist/examples.minimal/kernel")
FRAGMENT = Path("examples/minimal/boot.config")


def _tree(w: Workspace) -> Path:
    [tree] = [p for p in (w.kernel_cache / "trees").glob("*/*") if p.is_dir()]
    return tree


def _object(source: str) -> str:
    """The object a compiled input gives, relative to the tree."""
    rel = source.split("/linux-source-6.1/", 1)[-1]
    return os.path.splitext(os.path.normpath(rel))[0] + ".o"


@pytest.fixture(scope="module")
def runners(tmp_path_factory, tarball):
    base = tmp_path_factory.mktemp("object-cache")
    a = Workspace(base / "runner-a", base / "state-a", tarball)
    b = Workspace(base / "elsewhere/runner-b", base / "state-b", tarball)
    try:
        with redis_server(base / "redis") as url:
            flag = f"--kernel-build-object-cache={url}"
            first = a.pants(flag, "package", TARGET, timeout=3000)
            assert first.returncode == 0, first.output[-6000:]
            tree_a = _tree(a)
            a_build = json.loads((tree_a / LAST_BUILD).read_text())
            a_config = parse_config((a.root / DIST / "config").read_text())
            deps, generated = object_deps(str(tree_a)), generated_digests(str(tree_a))

            (b.root / FRAGMENT).write_text((b.root / FRAGMENT).read_text() + "CONFIG_SIGNALFD=y\n")
            home = base / "home-b"
            home.mkdir()
            old_home = os.environ.get("HOME")
            os.environ["HOME"] = str(home)
            try:
                second = b.pants(flag, "package", TARGET, timeout=3000)
            finally:
                if old_home is not None:
                    os.environ["HOME"] = old_home
            assert second.returncode == 0, second.output[-6000:]
            b_build = json.loads((_tree(b) / LAST_BUILD).read_text())
    finally:
        b.stop_pantsd()
    # A's warm tree builds B's configuration without the object cache: the reference bytes, and
    # the files that configuration regenerates (part of Kbuild's lower bound).
    (a.root / FRAGMENT).write_text((a.root / FRAGMENT).read_text() + "CONFIG_SIGNALFD=y\n")
    third = a.pants("package", TARGET, timeout=3000)
    a.stop_pantsd()
    assert third.returncode == 0, third.output[-6000:]
    assert "Starting: Build kernel" in third.output
    b_config = parse_config((b.root / DIST / "config").read_text())
    bound = lower_bound(
        deps,
        changed_symbols(a_config, b_config),
        object_files(str(tree_a)),
        changed_files(generated, generated_digests(str(tree_a))),
    )
    return {"a": a, "b": b, "a_build": a_build, "b_build": b_build, "bound": bound}


def test_the_first_runner_compiles_through_the_cache(runners):
    stats = runners["a_build"]["object_cache"]
    assert stats["storage"].startswith("redis://127.0.0.1:")
    assert stats["misses"] >= 0.9 * runners["a_build"]["compiled"], stats


def test_a_fresh_runner_compiles_only_the_lower_bound_of_another_configuration(runners):
    b = runners["b_build"]
    stats = b["object_cache"]
    assert b["distance"] is None  # a new tree: Kbuild ran every compile
    assert b["compiled"] >= 0.9 * b["objects"]
    missed = {_object(s) for s in stats["missed"] if ".tmp_vmlinux" not in s}
    print(
        f"runner B: {stats['hits']} hits, {stats['misses']} misses, bound {len(runners['bound'])}"
        f" objects; cold A {runners['a_build']['seconds']} s, B {b['seconds']} s"
    )
    assert "fs/signalfd.o" in missed
    assert missed <= runners["bound"], sorted(missed - runners["bound"])
    assert stats["hits"] >= 0.9 * b["compiled"]


def test_the_fresh_runners_kernel_is_byte_identical_to_a_build_without_the_cache(runners):
    for name in ("bzImage", "vmlinux", "config", "System.map", "sizes.json", "layout.json"):
        a = (runners["a"].root / DIST / name).read_bytes()
        assert a == (runners["b"].root / DIST / name).read_bytes(), name


def test_a_bad_url_is_refused_before_any_build(runners):
    result = runners["a"].pants(
        "--kernel-build-object-cache=127.0.0.1:6379", "package", TARGET, timeout=600
    )
    runners["a"].stop_pantsd()
    assert result.returncode != 0
    assert "[kernel-build].object_cache: '127.0.0.1:6379' is not a ccache remote storage URL" in (
        result.output
    ), result.output[-3000:]
