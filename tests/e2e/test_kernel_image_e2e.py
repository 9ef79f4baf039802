"""End to end, for real: Pants packages the example kernel with Kbuild from the pinned source,
boots it in QEMU to its init marker, rejects bad input clearly, and every build path (cold, warm
incremental, another warm tree, after a kill -9) gives byte-identical bzImage and vmlinux.

Runs ~8 minutes on 2 cores: two cold tiny-kernel builds, a few incremental ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from kernel_rules.domain.build.kbuild_deps import (
    changed_files,
    changed_symbols,
    generated_digests,
    lower_bound,
    object_deps,
)
from kernel_rules.domain.kconfig.fragments import parse_config
from kernel_rules.domain.build.kbuild import LAST_BUILD, object_files
from tests.conftest import _lock_value
from tests.e2e.workspace import (
    build_stats,
    driver_build_argv,
    driver_env,
    run_driver,
    REPO,
)

TARGET = "examples/minimal:kernel"
DIST = Path("dist/examples.minimal/kernel")


@pytest.fixture(scope="module")
def packaged(ws):
    result = ws.pants("package", TARGET)
    assert result.returncode == 0, result.output[-5000:]
    return ws.root / DIST


def _tree(ws) -> Path:
    trees = sorted(p for p in ws.kernel_cache.glob("trees/*/*") if p.is_dir())
    assert len(trees) == 1, trees
    return trees[0]


def _configure(ws, tarball, sha, extra: str, tmp: Path) -> Path:
    """A full, checked .config: the example's fragments plus `extra`, by the real driver."""
    frag = tmp / "extra.config"
    frag.write_text(extra)
    out = tmp / "configured"
    argv = [
        "python3",
        "-m",
        "kernel_rules.domain.build.kbuild",
        "configure",
        "--tarball",
        str(tarball),
        "--sha256",
        sha,
        "--cache",
        str(ws.kernel_cache),
        "--out",
        str(out),
        "--base-config",
        str(_base(ws, tarball, sha, tmp)),
        "--fragment",
        f"boot={REPO / 'examples/minimal/boot.config'}",
        "--fragment",
        f"debug={_debug_fragment(tmp)}",
        "--fragment",
        f"extra={frag}",
    ]
    done = run_driver(argv)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / ".config"


def _base(ws, tarball, sha, tmp: Path) -> Path:
    argv = [
        "python3",
        "-m",
        "kernel_rules.domain.build.kbuild",
        "base",
        "--tarball",
        str(tarball),
        "--sha256",
        sha,
        "--cache",
        str(ws.kernel_cache),
        "--out",
        str(tmp / "base"),
        "--base",
        "tinyconfig",
    ]
    done = run_driver(argv)
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp / "base" / ".config"


def _debug_fragment(tmp: Path) -> Path:
    from kernel_rules.rules.configure import DEBUG_INFO_FRAGMENT  # the same text the rule adds

    path = tmp / "debug.config"
    path.write_text(DEBUG_INFO_FRAGMENT)
    return path


def _same_kernel(a: Path, b: Path) -> None:
    # sizes.json too: a warm tree also holds objects of earlier configurations, which it must not
    # count; layout.json: the offsets probe runs in whichever tree built the kernel.
    for name in ("bzImage", "vmlinux", "sizes.json", "layout.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs: {a} vs {b}"


# ------------------------------------------------------------------------------------------------


def test_package_writes_all_artifacts(packaged):
    for name in ("bzImage", "vmlinux", "System.map", "config", "defconfig", "layout.json"):
        assert (packaged / name).stat().st_size > 0, name
    config = parse_config((packaged / "config").read_text())
    assert config["PRINTK"] == "y" and config["DEBUG_INFO_DWARF5"] == "y"
    vmlinux = (packaged / "vmlinux").read_bytes()
    assert b".debug_info" in vmlinux
    assert str(packaged.parents[3]).encode() not in vmlinux, "host paths leaked into vmlinux"
    assert b"/kernel/src/" in vmlinux


def test_test_goal_boots_to_the_init_marker(ws, packaged):
    result = ws.pants("test", "--test-output=all", TARGET)
    assert result.returncode == 0, result.output[-5000:]
    assert "init marker reached" in result.output


def test_noop_repackage_is_a_cache_hit(ws, packaged):
    result = ws.pants("package", TARGET)
    assert result.returncode == 0, result.output
    assert "Starting: Build kernel" not in result.output
    assert "Starting: Configure kernel" not in result.output
    assert result.seconds < 5, f"no-op package took {result.seconds:.1f}s"


BAD_BUILD = """
linux_source(name="badsum", tarball="linux.tar.xz", sha256="{zero}", version="6.1.192")
kernel_image(name="bad-base", source="//third_party/linux:linux-6.1", base="tinyconfg")
kernel_image(name="malformed", source="//third_party/linux:linux-6.1", fragments=["malformed.config"])
kernel_image(name="unknown", source="//third_party/linux:linux-6.1", fragments=["unknown.config"])
kernel_image(name="dropped", source="//third_party/linux:linux-6.1", fragments=["dropped.config"])
kernel_image(name="badsum-kernel", source=":badsum")
"""


@pytest.fixture(scope="module")
def bad(ws, packaged):
    d = ws.root / "bad"
    d.mkdir()
    (d / "BUILD").write_text(BAD_BUILD.format(zero="0" * 64))
    (d / "malformed.config").write_text("CONFIG_PRINTK=y\nCONFIG_TTY=yes please\n")
    (d / "unknown.config").write_text("CONFIG_PRINTK=y\nCONFIG_NOT_A_REAL_OPTION=y\n")
    (d / "dropped.config").write_text("# needs BLOCK\nCONFIG_EXT4_FS=y\n")
    os.link(ws.root / "third_party/linux/linux-source-6.1.tar.xz", d / "linux.tar.xz")
    return d


PINNED_SHA256 = _lock_value("sha256")


@pytest.mark.parametrize(
    "target, expected",
    [
        ("bad:bad-base", ["bad:bad-base", "base", "tinyconfg", "tinyconfig"]),
        ("bad:malformed", ["bad:malformed: field `fragments`: bad/malformed.config:2: malformed"]),
        (
            "bad:unknown",
            ["bad/unknown.config:2: CONFIG_NOT_A_REAL_OPTION: requested y, got n (unknown symbol"],
        ),
        (
            "bad:dropped",
            [
                "bad/dropped.config:2: CONFIG_EXT4_FS: requested y, got n "
                "(unmet dependency: BLOCK [BLOCK=n])"
            ],
        ),
        ("bad:badsum-kernel", ["bad:badsum: sha256 mismatch", "0" * 64, PINNED_SHA256]),
    ],
)
def test_bad_input_gets_a_clear_error(ws, bad, target, expected):
    result = ws.pants("package", target)
    assert result.returncode != 0
    for text in expected:
        assert text in result.output, result.output[-3000:]
    assert "Traceback (most recent call last)" not in result.output


def test_missing_tool_names_it_and_its_package(ws, bad, tmp_path):
    os.symlink("/usr/bin/python3", tmp_path / "python3")
    result = ws.pants(f"--kernel-build-search-path=['{tmp_path}']", "package", TARGET)
    assert result.returncode != 0
    assert "missing" in result.output and "gcc" in result.output
    assert "apt-get install" in result.output and "binutils" in result.output


def test_bad_input_leaves_warm_trees_and_caches_intact(ws, bad):
    tree = _tree(ws)
    assert not (tree / ".kr-building").exists()
    result = ws.pants("package", TARGET)
    assert result.returncode == 0 and "Starting: Build kernel" not in result.output


def test_warm_incremental_build_stays_in_the_lower_bound_and_is_identical(
    ws, packaged, tarball, tarball_sha256, tmp_path
):
    base_config = packaged / "config"
    leaf = _configure(ws, tarball, tarball_sha256, "CONFIG_SIGNALFD=y\n", tmp_path)
    tree = _tree(ws)
    before, before_gen = object_deps(str(tree)), generated_digests(str(tree))
    out = tmp_path / "leaf"
    done = run_driver(driver_build_argv(ws.kernel_cache, tarball, tarball_sha256, leaf, out))
    assert done.returncode == 0, done.stderr[-3000:]
    stats = build_stats(tree / LAST_BUILD)
    changed = changed_symbols(parse_config(base_config.read_text()), parse_config(leaf.read_text()))
    regenerated = changed_files(before_gen, generated_digests(str(tree)))
    bound = lower_bound(before, changed, object_files(str(tree)), regenerated)
    assert set(stats["compiled_objects"]) <= bound, set(stats["compiled_objects"]) - bound
    assert "fs/signalfd.o" in stats["compiled_objects"]
    assert stats["compiled"] <= 0.02 * stats["objects"]
    # ... and back: the warm tree gives the same bytes as the cold build Pants did.
    back = tmp_path / "back"
    done = run_driver(
        driver_build_argv(ws.kernel_cache, tarball, tarball_sha256, base_config, back)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _same_kernel(back, packaged)


@pytest.fixture(scope="module")
def second_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("second-cache")


def test_another_warm_tree_gives_identical_bytes(
    ws, packaged, tarball, tarball_sha256, second_cache, tmp_path
):
    """A second cache whose tree was warmed on a different configuration, then switched."""
    leaf = _configure(ws, tarball, tarball_sha256, "CONFIG_SIGNALFD=y\n", tmp_path)
    done = run_driver(
        driver_build_argv(second_cache, tarball, tarball_sha256, leaf, tmp_path / "a")
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "b"
    done = run_driver(
        driver_build_argv(second_cache, tarball, tarball_sha256, packaged / "config", out)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warm (1 symbols differ" in done.stderr
    _same_kernel(out, packaged)


def test_progress_of_a_running_build_then_killed_half_way_and_rebuilt_is_identical(
    ws, packaged, tarball, tarball_sha256, tmp_path
):
    """A broad rebuild (FUTEX on) in the workspace's own warm tree: `pants --concurrent
    kernel-progress` shows the objects compiled so far growing against the build's estimate;
    then the whole build is killed (kill -9) half way, nothing is listed as running any more, and
    building the example's configuration again repairs the tree and gives the same bytes as the
    cold build Pants did."""
    broad = _configure(ws, tarball, tarball_sha256, "CONFIG_FUTEX=y\n", tmp_path)
    argv = driver_build_argv(ws.kernel_cache, tarball, tarball_sha256, broad, tmp_path / "futex")
    proc = subprocess.Popen(
        argv,
        env=driver_env(),
        cwd=str(REPO),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen = []
    try:
        while proc.poll() is None and len(seen) < 2:
            result = ws.pants("--concurrent", "kernel-progress", "--format=json")
            assert result.returncode == 0, result.output[-3000:]
            builds = json.loads(result.stdout)["builds"]
            if builds and builds[0]["compiled"] > (seen[-1]["compiled"] if seen else 0):
                seen.append(builds[0])
        text = ws.pants("--concurrent", "kernel-progress")
        assert proc.poll() is None, "the build finished before it could be interrupted"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(seen) == 2, "the build ended before its progress was seen twice"
    first = seen[0]
    assert first["tree"].startswith("trees/") and first["expected_kind"] == "about"
    # FUTEX is named by the dependency files of hundreds of objects (kernel/futex, the scheduler,
    # every file including linux/futex.h ...).
    assert first["expected"] > 100, first
    assert seen[1]["compiled"] > first["compiled"]
    assert "objects compiled" in text.stdout or "No kernel build" in text.stdout, text.output
    after = ws.pants("--concurrent", "kernel-progress")
    assert after.returncode == 0 and "No kernel build is running" in after.stdout, after.output

    out = tmp_path / "rebuilt"
    done = run_driver(
        driver_build_argv(ws.kernel_cache, tarball, tarball_sha256, packaged / "config", out)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "repaired interrupted build" in done.stderr
    _same_kernel(out, packaged)
