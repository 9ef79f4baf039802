"""Build progress records: written while a build runs, gone when it ends, stale ones dropped."""

import json
import os
import subprocess
import sys

from kernel_rules.domain.build import progress
from kernel_rules.domain.build.kbuild import LAST_BUILD, _expected_compiles
from kernel_rules.domain.build.warm_trees import TreePool, WarmTree


def test_a_running_build_is_listed_with_its_count_and_gone_when_it_ends(tmp_path):
    cache = str(tmp_path)
    with progress.reporting(cache, "trees/abc/0", 436, 800, "about", None, interval=0) as update:
        (running,) = progress.active(cache)
        assert (running.tree, running.compiled, running.expected) == ("trees/abc/0", 0, 800)
        update(312)
        (running,) = progress.active(cache)
        assert running.compiled == 312 and running.pid == os.getpid()
        line = running.describe(running.started + 95)
        assert (
            line == "tree trees/abc/0 (436 options): 312 of about 800 objects compiled (39%), 95 s"
        )
        update(800, True)
        assert progress.active(cache)[0].describe(running.started).endswith("(100%), linking, 0 s")
    assert progress.active(cache) == []


def test_the_record_goes_when_the_build_fails(tmp_path):
    try:
        with progress.reporting(str(tmp_path), "trees/abc/1", 1, None, "", None):
            raise RuntimeError("make failed")
    except RuntimeError:
        pass
    assert progress.active(str(tmp_path)) == []
    assert os.listdir(tmp_path / progress.PROGRESS_DIR) == []


def test_updates_are_throttled_but_the_last_one_is_written(tmp_path):
    cache = str(tmp_path)
    with progress.reporting(cache, "t", 1, None, "", None, interval=3600) as update:
        update(1)  # the first update always writes (nothing was written since the start)
        update(2)
        assert progress.active(cache)[0].compiled == 1
        update(3, True)
        assert progress.active(cache)[0].compiled == 3


def test_a_record_of_a_dead_process_is_stale_and_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    record = dict(progress.BuildProgress("t", int(dead.stdout), 0.0, 5, 1).__dict__)
    path = tmp_path / progress.PROGRESS_DIR / "t.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"format": progress.FORMAT, **record}))
    (tmp_path / progress.PROGRESS_DIR / "junk.json").write_text("{not json")
    assert progress.active(str(tmp_path)) == []
    assert os.listdir(tmp_path / progress.PROGRESS_DIR) == []


def test_the_command_prints_the_active_builds_as_json(tmp_path):
    with progress.reporting(str(tmp_path), "trees/x/2", 7, None, "", None):
        out = subprocess.run(
            [sys.executable, "-m", "kernel_rules.domain.build.progress", "--cache", str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    (build,) = json.loads(out)["builds"]
    assert build["tree"] == "trees/x/2" and build["options"] == 7


def _tree_with(tmp_path, name, objects):
    tree = tmp_path / name
    for obj, symbols in objects.items():
        d = tree / os.path.dirname(obj)
        d.mkdir(parents=True, exist_ok=True)
        deps = " ".join(f"$(wildcard include/config/{s})" for s in symbols)
        (d / f".{os.path.basename(obj)}.cmd").write_text(f"deps_{obj} := {deps}\n")
    return tree


def test_a_warm_build_expects_at_least_the_objects_naming_a_changed_symbol(tmp_path):
    tree = _tree_with(
        tmp_path,
        "0",
        {"fs/eventfd.o": ["EVENTFD"], "kernel/fork.o": ["SMP"], "ipc/sem.o": ["SYSVIPC", "SMP"]},
    )
    (tree / ".kr-last-config").write_text("CONFIG_EVENTFD=y\nCONFIG_SYSVIPC=y\n")
    warm = WarmTree(str(tree), 2, False)
    pool = TreePool(str(tmp_path / "cache"), "trees", "0" * 64)
    expected = _expected_compiles(warm, pool, {"EVENTFD": "y", "SMP": "y"})
    assert expected == (2, "about", 3)  # SMP and SYSVIPC changed: kernel/fork.o, ipc/sem.o


def test_a_cold_build_expects_about_the_last_build_of_another_tree(tmp_path):
    pool = TreePool(str(tmp_path), "trees", "0" * 64)
    cold = WarmTree(os.path.join(pool.dir, "1"), None, False)
    assert _expected_compiles(cold, pool, {}) == (None, "", None)
    os.makedirs(os.path.join(pool.dir, "0"))
    with open(os.path.join(pool.dir, "0", LAST_BUILD), "w") as f:
        json.dump({"objects": 881, "compiled": 12}, f)
    assert _expected_compiles(cold, pool, {}) == (881, "about", None)
