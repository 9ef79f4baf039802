import os
import subprocess
import sys
import tarfile
import time

import pytest

from kernel_rules.domain.build.warm_trees import (
    BUILDING,
    LAST_CONFIG,
    BuildCosts,
    TreePool,
    repair_interrupted,
    unpack_source,
)

SHA = "ab" * 32


def _finish(pool_tree, text):
    pool_tree.begin_build()
    pool_tree.finish_build(text)


def test_closest_free_tree_is_chosen(tmp_path):
    pool = TreePool(str(tmp_path), "trees", SHA, max_trees=3)
    with pool.acquire({"A": "y"}) as t0, pool.acquire({"A": "y"}) as t1:
        assert t0.path != t1.path and t0.distance is None and t1.distance is None
        _finish(t0, "CONFIG_A=y\nCONFIG_B=y\n")
        _finish(t1, "CONFIG_A=y\n")
    with pool.acquire({"A": "y", "B": "y", "C": "y"}) as t:
        assert t.path == t0.path and t.distance == 1
    with pool.acquire({"A": "y"}) as t:
        assert t.path == t1.path and t.distance == 0


def test_busy_tree_is_skipped_and_a_new_one_made(tmp_path):
    pool = TreePool(str(tmp_path), "trees", SHA, max_trees=2)
    with pool.acquire({}) as t0:
        _finish(t0, "CONFIG_A=y\n")
    with pool.acquire({"A": "y"}) as held:
        assert held.path == t0.path
        with pool.acquire({"A": "y"}) as other:
            assert other.path != held.path


def _costs(per_tree, cold):
    """BuildCosts from {tree name: objects, or a callable of the tree's config}."""

    def in_tree(path, tree_config, busy):
        cost = per_tree.get(os.path.basename(path))
        return cost(tree_config, busy) if callable(cost) else cost

    return BuildCosts(in_tree, cold)


def test_cheapest_tree_wins_over_the_closest(tmp_path):
    pool = TreePool(str(tmp_path), "trees", SHA, max_trees=3)
    with pool.acquire({}) as t0, pool.acquire({}) as t1:
        _finish(t0, "CONFIG_A=y\n")  # one symbol away, but a broad one
        _finish(t1, "CONFIG_B=y\nCONFIG_C=y\nCONFIG_D=y\n")  # three leaves away
    target = {"A": "n", "B": "y", "C": "y"}
    with pool.acquire(target, _costs({"0": 700, "1": 12}, 900)) as t:
        assert t.path.endswith("/1") and t.estimate == 12 and not t.waited
    # a free tree dearer than a cold build loses to a new tree
    with pool.acquire(target, _costs({"0": 950, "1": 920}, 900)) as t:
        assert os.path.basename(t.path) == "2" and t.distance is None and t.estimate == 900
    # a tree whose cost is unknown is still taken by distance over a new one of unknown cost
    with pool.acquire(target, _costs({}, None)) as t:
        assert os.path.basename(t.path) in ("0", "1", "2") and t.distance is not None


def test_waits_for_a_busy_tree_when_its_delta_is_cheaper_than_a_cold_build(tmp_path):
    pool = TreePool(str(tmp_path), "trees", SHA, max_trees=3)
    with pool.acquire({}) as t0:
        _finish(t0, "CONFIG_A=y\n")
    root = (
        os.getcwd()
        if os.path.exists("kernel_rules")
        else os.path.dirname(os.path.dirname(__file__))
    )
    holder = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from kernel_rules.domain.build.warm_trees import TreePool\n"
        "p = TreePool(%r, 'trees', %r, max_trees=3)\n"
        "with p.acquire({'A': 'y'}) as t:\n"
        "    t.begin_build()\n"
        "    open(t.path + '/.config', 'w').write('CONFIG_A=y\\nCONFIG_B=y\\n')\n"
        "    print(t.path, flush=True); time.sleep(2)\n"
        "    t.finish_build('CONFIG_A=y\\nCONFIG_B=y\\n')\n"
    ) % (root, str(tmp_path), SHA)
    child = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    busy_path = child.stdout.readline().strip()
    seen = []

    def delta(tree_config, busy):
        seen.append((dict(tree_config), busy))
        return 5

    start = time.monotonic()
    with pool.acquire({"A": "y", "B": "y", "C": "y"}, _costs({"0": delta}, 900)) as t:
        assert t.path == busy_path and t.waited and t.estimate == 5
        assert t.distance == 1  # from the configuration the waited-for build left, not before it
        assert time.monotonic() - start >= 1.0, "it must have waited for the holder"
    assert seen == [({"A": "y", "B": "y"}, True)]  # costed from the config being built there
    child.wait(timeout=30)
    # the busy tree costs more than a cold build: a new tree, no waiting
    child = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    busy_path = child.stdout.readline().strip()
    with pool.acquire({"C": "y"}, _costs({"0": 1000}, 900)) as t:
        assert t.path != busy_path and not t.waited and t.distance is None
    child.wait(timeout=30)


def test_lock_is_exclusive_across_processes(tmp_path):
    pool = TreePool(str(tmp_path), "trees", SHA, max_trees=1)
    with pool.acquire({}) as t0:
        _finish(t0, "CONFIG_A=y\n")
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from kernel_rules.domain.build.warm_trees import TreePool\n"
        "p = TreePool(%r, 'trees', %r, max_trees=1)\n"
        "t = time.monotonic()\n"
        "with p.acquire({}) as tree: print(round(time.monotonic() - t, 1))\n"
    ) % (
        os.getcwd()
        if os.path.exists("kernel_rules")
        else os.path.dirname(os.path.dirname(__file__)),
        str(tmp_path),
        SHA,
    )
    with pool.acquire({}):
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert child.poll() is None, "the second user must wait for the lock"
    waited = float(child.communicate(timeout=30)[0])
    assert waited >= 1.0


def test_interrupted_build_removes_only_files_written_after_it_began(tmp_path):
    tree = tmp_path / "0"
    tree.mkdir()
    old = tree / "old.o"
    old.write_text("complete")
    (tree / LAST_CONFIG).write_text("CONFIG_A=y\n")
    time.sleep(0.01)
    (tree / BUILDING).write_text("")
    time.sleep(0.01)
    (tree / "sub").mkdir()
    partial = tree / "sub" / "half.o"
    partial.write_text("half")
    assert repair_interrupted(str(tree))
    assert old.exists() and not partial.exists()
    assert not (tree / BUILDING).exists() and not (tree / LAST_CONFIG).exists()
    assert not repair_interrupted(str(tree))


def test_killed_holder_releases_the_tree(tmp_path):
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from kernel_rules.domain.build.warm_trees import TreePool\n"
        "p = TreePool(%r, 'trees', %r, max_trees=1)\n"
        "with p.acquire({}) as tree:\n"
        "    tree.begin_build(); open(tree.path + '/x.o', 'w').write('partial')\n"
        "    print('held', flush=True); time.sleep(60)\n"
    ) % (
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        str(tmp_path),
        SHA,
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    child.kill()
    child.wait()
    pool = TreePool(str(tmp_path), "trees", SHA, max_trees=1)
    with pool.acquire({}) as tree:
        assert tree.recovered and not os.path.exists(os.path.join(tree.path, "x.o"))


def test_least_recently_used_trees_beyond_the_limit_are_evicted(tmp_path):
    pool = TreePool(str(tmp_path), "trees", SHA, max_trees=3)
    with pool.acquire({}), pool.acquire({}), pool.acquire({}):
        pass
    pool.max_trees = 1
    with pool.acquire({}) as kept:
        pass
    remaining = [d for d in os.listdir(pool.dir) if d.isdigit()]
    assert remaining == [os.path.basename(kept.path)]


def test_source_is_unpacked_once_and_checked(tmp_path):
    src = tmp_path / "linux-9.9"
    src.mkdir()
    (src / "Makefile").write_text("VERSION = 9\n")
    tar = tmp_path / "linux.tar"
    with tarfile.open(tar, "w") as t:
        t.add(src, arcname="linux-9.9")
    cache = tmp_path / "cache"
    first = unpack_source(str(cache), str(tar), SHA)
    assert first.endswith("linux-9.9") and os.path.exists(os.path.join(first, "Makefile"))
    mtime = os.stat(first).st_mtime_ns
    assert unpack_source(str(cache), str(tar), SHA) == first
    assert os.stat(first).st_mtime_ns == mtime
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as t:
        t.add(tar, arcname="just-a-file")
    with pytest.raises(RuntimeError, match="one top-level kernel source directory"):
        unpack_source(str(cache), str(bad), "cd" * 32)


def _tarball(path, top="linux-x"):
    src = path.parent / (path.name + ".d")
    (src / top).mkdir(parents=True)
    (src / top / "Makefile").write_text("all:\n")
    with tarfile.open(path, "w:gz") as t:
        t.add(src / top, arcname=top)
    return path


_UNPACK = (
    "import sys; sys.path.insert(0, {repo!r})\n"
    "from kernel_rules.domain.build import warm_trees as w\n"
    "w.SOURCES_KEPT = 1\n"
    "print(w.unpack_source({cache!r}, {tarball!r}, {sha!r}))\n"
)
REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _unpack_in_child(cache, tarball, sha, hold=False):
    """unpack_source in another process (as builds do); with `hold`, the child keeps running."""
    code = _UNPACK.format(repo=REPO_DIR, cache=str(cache), tarball=str(tarball), sha=sha)
    if hold:
        code += "sys.stdout.flush(); sys.stdin.read()\n"
        child = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        child.stdout.readline()
        return child
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )


def test_a_failed_unpack_leaves_nothing_and_a_killed_ones_leftovers_are_removed(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"not a tarball" * 100)
    with pytest.raises(RuntimeError, match="unpacking .*bad.tar.gz failed"):
        unpack_source(str(tmp_path / "cache"), str(bad), "cd" * 32)
    sources = tmp_path / "cache" / "sources"
    assert [p.name for p in sources.iterdir()] == ["cd" * 32 + ".lock"]
    stale = sources / (".%s-killed" % ("ef" * 6))  # what a killed unpacker leaves
    (stale / "linux-x").mkdir(parents=True)
    good = _tarball(tmp_path / "good.tar.gz")
    _unpack_in_child(tmp_path / "cache", good, "ef" * 32)
    assert not stale.exists()
    assert (sources / ("ef" * 32) / ".complete").exists()


def test_unused_sources_and_their_trees_are_evicted_and_used_ones_kept(tmp_path):
    cache = tmp_path / "cache"
    tarball = _tarball(tmp_path / "src.tar.gz")
    a, b, c = "aa" * 32, "bb" * 32, "cc" * 32
    holder = _unpack_in_child(cache, tarball, a, hold=True)  # a build still using source a
    try:
        start = time.monotonic()
        _unpack_in_child(cache, tarball, a)  # another user of the complete entry does not wait
        assert time.monotonic() - start < 20
        _unpack_in_child(cache, tarball, b)
        pool = TreePool(str(cache), "trees", b)
        with pool.acquire({}) as tree:
            _finish(tree, "CONFIG_A=y\n")
        time.sleep(0.05)
        _unpack_in_child(cache, tarball, c)
        names = sorted(
            p.name for p in (cache / "sources").iterdir() if not p.name.endswith(".lock")
        )
        # a is held by a running process, so only b (unused) can go; c is the newest
        assert names == [a, c], names
        assert not (cache / "trees" / b[:16]).exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    d = "dd" * 32
    time.sleep(0.05)
    _unpack_in_child(cache, tarball, d)
    names = sorted(p.name for p in (cache / "sources").iterdir() if not p.name.endswith(".lock"))
    assert names == [d], names  # a is free now; one source is kept
