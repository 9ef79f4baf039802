import os
import subprocess
import sys
import tarfile
import time

import pytest

from kernel_rules.domain.warm_trees import BUILDING, LAST_CONFIG, TreePool, repair_interrupted, unpack_source

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


def test_lock_is_exclusive_across_processes(tmp_path):
    pool = TreePool(str(tmp_path), "trees", SHA, max_trees=1)
    with pool.acquire({}) as t0:
        _finish(t0, "CONFIG_A=y\n")
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from kernel_rules.domain.warm_trees import TreePool\n"
        "p = TreePool(%r, 'trees', %r, max_trees=1)\n"
        "t = time.monotonic()\n"
        "with p.acquire({}) as tree: print(round(time.monotonic() - t, 1))\n"
    ) % (os.getcwd() if os.path.exists("kernel_rules") else os.path.dirname(os.path.dirname(__file__)),
         str(tmp_path), SHA)
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
        "from kernel_rules.domain.warm_trees import TreePool\n"
        "p = TreePool(%r, 'trees', %r, max_trees=1)\n"
        "with p.acquire({}) as tree:\n"
        "    tree.begin_build(); open(tree.path + '/x.o', 'w').write('partial')\n"
        "    print('held', flush=True); time.sleep(60)\n"
    ) % (os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
         str(tmp_path), SHA)
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
