#!/usr/bin/env python3
"""CI of the services monorepo (examples/services): a cold run, a one-service change, a baseline change.

A CI runner's view, in a scratch git checkout of the repository with its own, empty local store
and named caches (no warm tree, nothing cached):
1. cold: `pants package test examples/services::` (every trace, composition, build and check);
2. one service: a commit that makes the kv service take a file handle of /srv at start-up
   (`name_to_handle_at` in examples/services/kv/kv.c: the FHANDLE option, a leaf no other
   service's kernel has), then the two commands a CI job runs:
   `pants --changed-since=HEAD~1 --changed-dependents=transitive list` and `pants package test`
   of what it listed;
3. the baseline: the same after a commit that adds a step to examples/services/boot.sh.

Prints, per phase, the targets picked, the wall time, and per tailored kernel whether Kbuild ran
(a cache hit, or the same build as another kernel of the phase with the same configuration), the
objects it compiled of those linked against Kbuild's lower bound of its delta, and the warm tree
it was given (differing symbols, the chooser's estimate, whether it waited for a busy tree);
writes docs/benchmarks/ci.md.

Usage: .venv/bin/python benchmarks/ci.py   (the cold run builds a trace kernel and five tailored
kernels and traces six guests: about half an hour on 2 cores; the other phases follow)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.pants import step_durations  # noqa: E402
from benchmarks.lib.report import cpu_model, fmt_int, today, write_page  # noqa: E402
from benchmarks.lib.source import pinned_tarball  # noqa: E402
from tests.e2e.workspace import Workspace  # noqa: E402

OUT = REPO / "docs/benchmarks/ci.md"
SERVICES = ("web", "kv", "db", "scheduler", "watcher")
KV_HANDLE = """
	{ /* kv: a file handle of its store's filesystem, for a supervisor (FHANDLE) */
		struct file_handle *handle = malloc(sizeof *handle + MAX_HANDLE_SZ);
		int mount_id;

		CHECK(handle != NULL, "malloc");
		handle->handle_bytes = MAX_HANDLE_SZ;
		CHECK(name_to_handle_at(AT_FDCWD, "/srv", handle, &mount_id, 0) == 0, "name_to_handle_at");
		free(handle);
	}
"""


def _kv_takes_a_file_handle(root: Path) -> None:
    path = root / "examples/services/kv/kv.c"
    text = path.read_text()
    usage = '\tCHECK(argc == 2, "usage: kv SOCKET");\n'
    assert usage in text and text.count("#include <poll.h>") == 1, path
    text = text.replace(
        "#include <poll.h>", "#define _GNU_SOURCE\n#include <fcntl.h>\n#include <poll.h>"
    )
    path.write_text(text.replace(usage, usage + KV_HANDLE))


def _boot_gains_a_step(root: Path) -> None:
    with open(root / "examples/services/boot.sh", "a") as f:
        f.write("mkdir -p /srv/log\n")


CHANGES = (
    ("one service (kv.c: name_to_handle_at)", _kv_takes_a_file_handle),
    ("the baseline (boot.sh: one more step)", _boot_gains_a_step),
)
CHANGED = ("--changed-since=HEAD~1", "--changed-dependents=transitive")


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def _pants(w: Workspace, *args: str) -> Tuple[str, float]:
    done = w.pants(*args, timeout=4 * 3600)
    if done.returncode != 0:
        sys.exit(f"pants {' '.join(args)} failed:\n{done.output[-6000:]}")
    return done.output, done.seconds


def _kernel_rows(w: Workspace, phase: str, log: str, kernels: Sequence[str]) -> List[str]:
    """One table row per tailored kernel the phase packaged."""
    built = {
        step.split()[2]: seconds
        for step, seconds in step_durations(log)
        if step.startswith("Build kernel ")
    }

    def dist(address: str) -> Path:
        path, name = address.split(":")
        return w.root / "dist" / path.replace("/", ".") / name

    configs = {a: (dist(a) / "config").read_text() for a in kernels}
    rows = []
    for address in kernels:
        report = json.loads((dist(address) / "report.json").read_text())
        b = report["build"]
        twin = next(
            (o for o in kernels if o in built and o != address and configs[o] == configs[address]),
            None,
        )
        if address in built:
            bound = b.get("lower_bound")
            kbuild = (
                f"{fmt_int(b['compiled'])} of {fmt_int(b['objects'])}",
                "-"
                if bound is None
                else f"{fmt_int(bound)}, {len(b['outside_lower_bound'])} outside",
                f"{built[address]:.0f}",
                "new tree" if b.get("distance") is None else f"{b['distance']} symbols",
                fmt_int(b.get("estimate")),
                "yes" if b.get("waited") else "no",
            )
        elif twin:
            kbuild = (f"same build as `{twin}`", "-", "-", "-", "-", "-")
        else:
            kbuild = ("cache hit", "-", "-", "-", "-", "-")
        passed = "pass" if report["all_apps_passed"] else "FAIL"
        rows.append(f"| {phase} | `{address}` | " + " | ".join(kbuild) + f" | {passed} |")
    return rows


def main(argv=None) -> int:
    argparse.ArgumentParser(prog="ci", description=__doc__.splitlines()[0]).parse_args(argv)
    tarball, _ = pinned_tarball()
    phases, kernels_table = [], []
    with tempfile.TemporaryDirectory(prefix="kr-ci-") as tmp_dir:
        tmp = Path(tmp_dir)
        w = Workspace(tmp / "checkout", tmp / "state", tarball)
        (w.root / ".gitignore").write_text("/dist/\n/.pants.d/\n/.pids/\n*.tar.xz\n*.deb\n")
        _git(w.root, "init", "-q", "-b", "main")
        _git(w.root, "add", "-A")
        _git(w.root, "commit", "-q", "-m", "the monorepo")
        try:
            every = [f"examples/services/{s}:kernel" for s in SERVICES]
            print("cold: pants package test examples/services:: (empty caches) ...", flush=True)
            log, seconds = _pants(w, "package", "test", "examples/services::")
            phases.append(("cold", "examples/services:: (11 targets)", seconds))
            kernels_table += _kernel_rows(w, "cold", log, every)
            for phase, edit in CHANGES:
                edit(w.root)
                _git(w.root, "commit", "-q", "-am", phase)
                listed, _ = _pants(w, *CHANGED, "list")
                picked = sorted(
                    line.strip()
                    for line in listed.splitlines()
                    if line.startswith("examples/services")
                )
                print(f"{phase}: {len(picked)} targets picked; package test ...", flush=True)
                log, seconds = _pants(w, "package", "test", *picked)
                phases.append((phase, ", ".join(f"`{p}`" for p in picked), seconds))
                kernels_table += _kernel_rows(
                    w, phase, log, [p for p in picked if p.endswith(":kernel")]
                )
        finally:
            w.stop_pantsd()
    lines = [
        "# CI of the services monorepo",
        "",
        f"`benchmarks/ci.py`, {today()}, {cpu_model()}, 2 cores, QEMU TCG. A scratch git checkout "
        "with an empty local store and empty named caches (a fresh CI runner), then two commits; "
        "each phase runs `pants --changed-since=HEAD~1 --changed-dependents=transitive list` and "
        "`pants package test` of what it listed.",
        "",
        "| phase | targets picked | wall s |",
        "|---|---|--:|",
        *(f"| {p} | {t} | {s:.0f} |" for p, t, s in phases),
        "",
        "Per tailored kernel (`compiled`: objects Kbuild compiled of those the kernel links; "
        "`lower bound`: Kbuild's lower bound of the build's delta from its tree's last "
        "configuration, and how many compiled objects were outside it; `build s`: the build step, "
        "including any wait for a busy tree; `tree`: symbols its warm tree's last configuration "
        "differed by; `estimate`: what the tree chooser expected to compile; `waited`: for a busy "
        "tree). Kernels of one phase with the same configuration share one build (one Pants "
        "process).",
        "",
        "| phase | kernel | compiled | lower bound | build s | tree | estimate | waited | apps |",
        "|---|---|--:|--:|--:|---|--:|---|---|",
        *kernels_table,
        "",
    ]
    write_page(OUT, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
