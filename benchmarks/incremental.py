#!/usr/bin/env python3
"""Incremental kernel builds through Pants: how much a one-symbol config change recompiles.

Steps, in a scratch copy of the repository with empty caches:
  full         `pants package` of the example kernel, cold
  no-op        the same again (a Pants cache hit, with pantsd)
  <SYM> on     a fragment sets one symbol; Kbuild runs in the warm tree
  <SYM> back   the fragment is reverted, run with --no-local-cache so Kbuild really runs
for a leaf symbol (SIGNALFD: no widely included header mentions it) and a broad one (FUTEX:
include/linux/sched.h mentions it, so most objects depend on it).

For each step: wall time, objects Kbuild compiled (from its own `CC`/`AS` lines), the lower bound
(objects whose Kbuild dependency file names a changed symbol, new objects, and the bzImage
assembly objects; see kernel_rules/domain/build/kbuild_deps.py), objects compiled outside that bound,
and the total objects in the image. Prints a Markdown table and writes docs/benchmarks/incremental.md.

Usage: .venv/bin/python benchmarks/incremental.py   (~8 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.kbuild import delta_bound, last_build, snapshot  # noqa: E402
from benchmarks.lib.pants import pants  # noqa: E402
from benchmarks.lib.report import pct, timed, today, write_page  # noqa: E402
from benchmarks.lib.source import pinned_tarball  # noqa: E402
from kernel_rules.domain.build.kbuild import LAST_BUILD, object_files  # noqa: E402
from tests.e2e.workspace import Workspace  # noqa: E402

BENCH_BUILD = """kernel_image(
    name="kernel",
    source="//third_party/linux:linux-6.1",
    fragments=["../examples/minimal/boot.config", "delta.config"],
    debug_info=True,
)
"""
TARGET = "bench:kernel"


def _tree(ws: Workspace) -> Path | None:
    trees = sorted(p for p in ws.kernel_cache.glob("trees/*/*") if p.is_dir())
    return trees[0] if trees else None


def _step(ws: Workspace, name: str, delta: str, *flags: str) -> dict:
    (ws.root / "bench/delta.config").write_text(delta)
    tree = _tree(ws)
    before = snapshot(tree) if tree else None
    stats_path = tree / LAST_BUILD if tree else None
    before_mtime = stats_path.stat().st_mtime_ns if stats_path and stats_path.exists() else 0
    result = ws.pants(*flags, "package", TARGET)
    if result.returncode != 0:
        raise SystemExit(f"step {name!r} failed:\n{result.output[-4000:]}")
    tree = _tree(ws)
    built = (tree / LAST_BUILD).stat().st_mtime_ns != before_mtime
    stats = last_build(tree)
    after_objects = list(object_files(str(tree)))
    row = {"step": name, "wall_s": round(result.seconds, 1), "objects": len(after_objects)}
    if not built:
        row.update(compiled=0, lower_bound=0, outside=0, note="Pants cache hit")
        return row
    compiled = set(stats["compiled_objects"])
    if before and before["deps"]:
        changed, regenerated, bound = delta_bound(before, tree)
        note = "changed: " + ", ".join(sorted(changed))
        if regenerated:
            note += "; regenerated: " + ", ".join(sorted(os.path.basename(f) for f in regenerated))
    else:
        bound, note = set(compiled) | set(after_objects), "cold build: everything is needed"
    row.update(
        compiled=len(compiled),
        lower_bound=len(bound),
        outside=len(compiled - bound),
        kbuild_s=stats["seconds"],
        note=note,
    )
    return row


def _launcher_overhead(runs: int = 5) -> float:
    """Median wall time of `./pants --version` in this repository (setup already done)."""
    times = sorted(timed(pants, "--version")[1] for _ in range(runs))
    return times[len(times) // 2]


def main(argv=None) -> int:
    argparse.ArgumentParser(prog="incremental", description=__doc__.splitlines()[0]).parse_args(
        argv
    )
    tarball, _ = pinned_tarball()
    with tempfile.TemporaryDirectory(prefix="kr-bench-") as tmp:
        ws = Workspace(Path(tmp) / "repo", Path(tmp) / "state", tarball)
        (ws.root / "bench").mkdir()
        (ws.root / "bench/BUILD").write_text(BENCH_BUILD)
        try:
            rows = [_step(ws, "full build (cold)", "")]
            rows.append(_step(ws, "no-op package", ""))
            launcher = _launcher_overhead()
            for sym, kind in (("SIGNALFD", "leaf"), ("FUTEX", "broad")):
                rows.append(_step(ws, f"{sym}=y ({kind})", f"CONFIG_{sym}=y\n"))
                rows.append(_step(ws, f"{sym} back", "", "--no-local-cache"))
        finally:
            ws.stop_pantsd()
    full = rows[0]["wall_s"]
    header = (
        "| step | wall s | % of full | Kbuild s | compiled | lower bound | outside bound "
        "| objects in image | notes |"
    )
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['wall_s']} | {pct(r['wall_s'], full)} | "
            f"{r.get('kbuild_s', '-')} | {r['compiled']} | {r['lower_bound']} | {r['outside']} | "
            f"{r['objects']} | {r['note']} |"
        )
    table = "\n".join(lines)
    table += (
        f"\n\n`./pants --version` once set up (setup check + Pants client, pantsd warm): "
        f"median {launcher:.2f} s of 5 runs."
    )
    print(table)
    write_page(
        REPO / "docs/benchmarks/incremental.md",
        (
            "# Incremental kernel builds\n\n"
            "Written by `benchmarks/incremental.py` (re-run it to refresh). The example kernel "
            "(tinyconfig + examples/minimal/boot.config + DWARF) packaged through Pants; each step "
            "changes one symbol. *Wall* is the whole `pants package` (configure + build + Pants); "
            "*Kbuild s* is the build step alone. *Compiled* counts Kbuild's own `CC`/`AS` lines. "
            "*Lower bound*: objects whose Kbuild dependency file names a changed symbol or a "
            "generated header whose content changed (e.g. asm-offsets.h), new objects, and the "
            "bzImage assembly objects under arch/x86/boot.\n\n"
            f"Machine: {os.cpu_count()} cores, {platform.machine()}, "
            f"{today()}.\n\n" + table + "\n"
        ),
        echo=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
