"""Kbuild steps the product has no target for, run with the product's make command line.

- `localmodconfig`: `make localmodconfig` (a configuration a user could write as a
  `base_config`, but which no product field produces) in a throw-away O= tree;
- `snapshot` / `delta_bound`: what Kbuild had to recompile after a configuration change in a warm
  tree, by the product's lower bound (`domain.build.kbuild_deps`), shared by incremental.py and
  distro_timings.py;
- `warm_tree_for` / `install_modules`: a `kernel_image` packages bzImage, vmlinux, config and
  sizes.json but not its modules (no `modules_install` output in dist/). A benchmark that boots
  the modules installs them from the warm tree that built the package, under the tree's lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Set, Tuple

from benchmarks.lib.source import named_cache, source_tree
from kernel_rules.domain.build.kbuild import LAST_BUILD, PINNED_ENV, make_argv, object_files
from kernel_rules.domain.build.kbuild_deps import (
    changed_files,
    changed_symbols,
    generated_digests,
    lower_bound,
    object_deps,
)
from kernel_rules.domain.build.warm_trees import LAST_CONFIG, locked
from kernel_rules.domain.kconfig.fragments import parse_config

ARCH = "x86_64"


def _make(
    src: str, tree: str, targets: Sequence[str], extra: Sequence[str] = (), jobs: int = 2
) -> None:
    argv = ["nice", "-n", "10", *make_argv(src, tree, ARCH, jobs, targets), *extra]
    done = subprocess.run(argv, env={**os.environ, **PINNED_ENV}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"make {' '.join(targets)} failed in {tree}:\n" + (done.stdout + done.stderr)[-4000:]
        )


def localmodconfig(config_text: str, modules: Sequence[str]) -> str:
    """`make localmodconfig` on `config_text` with `modules` as the loaded list (LSMOD)."""
    src = source_tree()
    with tempfile.TemporaryDirectory(prefix="kr-bench-localmod-") as tree:
        Path(tree, ".config").write_text(config_text)
        lsmod = Path(tree, "lsmod.txt")
        lsmod.write_text(
            "Module                  Size  Used by\n" + "".join(f"{m} 0 0\n" for m in modules)
        )
        _make(src, tree, ["localmodconfig"], [f"LSMOD={lsmod}"])
        return Path(tree, ".config").read_text()


def warm_tree_for(config: Dict[str, str]) -> Optional[Path]:
    """The warm build tree (named cache `trees/`) whose last successful build is `config`."""
    for tree in sorted((named_cache() / "trees").glob("*/*")):
        last = tree / LAST_CONFIG
        if tree.is_dir() and last.exists() and parse_config(last.read_text()) == config:
            return tree
    return None


def last_build(tree: Path) -> dict:
    """The product's stats of the tree's last build (compiled, objects, seconds, distance)."""
    return json.loads((tree / LAST_BUILD).read_text())


def snapshot(tree: Path) -> dict:
    """What `delta_bound` compares a later build of `tree` with: its objects' dependencies, its
    generated headers' digests and its last built configuration."""
    return {
        "deps": object_deps(str(tree)),
        "generated": generated_digests(str(tree)),
        "config": parse_config((tree / LAST_CONFIG).read_text()),
    }


def delta_bound(before: dict, tree: Path) -> Tuple[Set[str], Set[str], Set[str]]:
    """(changed symbols, regenerated files, objects Kbuild had to compile at least) of the build
    `tree` has done since `before = snapshot(tree)`."""
    changed = changed_symbols(before["config"], parse_config((tree / LAST_CONFIG).read_text()))
    regenerated = changed_files(before["generated"], generated_digests(str(tree)))
    return (
        changed,
        regenerated,
        lower_bound(before["deps"], changed, object_files(str(tree)), regenerated),
    )


def install_modules(config: Dict[str, str], dest: Path) -> Optional[Path]:
    """`make modules_install INSTALL_MOD_PATH=dest INSTALL_MOD_STRIP=1` (stripped and signed, as
    Debian's are) in the warm tree holding `config`; returns dest, None when no tree holds it."""
    tree = warm_tree_for(config)
    if tree is None:
        return None
    with locked(str(tree) + ".lock"):
        if parse_config((tree / LAST_CONFIG).read_text()) != config:
            return None
        _make(
            source_tree(),
            str(tree),
            ["modules_install"],
            [f"INSTALL_MOD_PATH={dest}", "INSTALL_MOD_STRIP=1"],
        )
    return dest
