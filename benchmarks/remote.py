#!/usr/bin/env python3
"""Remote caching: a cold build vs the same package in a second checkout served by a REAPI cache.

Starts BuildGrid on loopback (third_party/buildgrid/cache-only.yml), packages the example kernel
in checkout A with empty caches (cold: everything runs, results are uploaded), then in checkout B
at another path with its own empty local store, named caches and HOME (everything should come
from the remote cache). Prints a Markdown table and writes docs/benchmarks/remote.md.

Usage: .venv/bin/python benchmarks/remote.py   (~4 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.report import pct, today, write_page  # noqa: E402
from benchmarks.lib.source import pinned_tarball  # noqa: E402
from tests.e2e.remote_cache import buildgrid_server, remote_flags, stats_counter  # noqa: E402
from tests.e2e.workspace import Workspace  # noqa: E402

TARGET = "examples/minimal:kernel"


def main(argv=None) -> int:
    argparse.ArgumentParser(prog="remote", description=__doc__.splitlines()[0]).parse_args(argv)
    tarball, _ = pinned_tarball()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kr-remote-") as tmp_dir:
        tmp = Path(tmp_dir)
        with buildgrid_server(tmp / "buildgrid") as address:
            for name, read, write in (
                ("A: cold, uploads", False, True),
                ("B: other checkout, remote hits", True, False),
            ):
                ws = Workspace(tmp / name[0] / "repo", tmp / name[0] / "state", tarball)
                os.environ["HOME"] = str(tmp / name[0])
                result = ws.pants(*remote_flags(address, read, write), "package", TARGET)
                if result.returncode != 0:
                    raise SystemExit(f"{name} failed:\n{result.output[-4000:]}")
                rows.append(
                    {
                        "run": name,
                        "wall_s": round(result.seconds, 1),
                        "remote_hits": stats_counter(result.output, "remote_cache_requests_cached"),
                        "local_builds": int("Starting: Build kernel" in result.output),
                        "trees": int((ws.kernel_cache / "trees").exists()),
                    }
                )
    cold = rows[0]["wall_s"]
    lines = [
        "| run | wall s | % of cold | processes from remote cache | kernel built locally | Kbuild tree made |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['wall_s']} | {pct(r['wall_s'], cold)} | "
            f"{r['remote_hits']} | {'yes' if r['local_builds'] else 'no'} | "
            f"{'yes' if r['trees'] else 'no'} |"
        )
    table = "\n".join(lines)
    print(table)
    write_page(
        REPO / "docs/benchmarks/remote.md",
        (
            "# Remote cache\n\nWritten by `benchmarks/remote.py` (re-run it to refresh). The example "
            "kernel packaged through a BuildGrid cache on loopback, first in a checkout with empty "
            "caches, then in a second checkout at another path with its own empty local store, named "
            "caches and HOME. Wall time is the whole `pants package` without pantsd (Pants start-up "
            f"included).\n\nMachine: {os.cpu_count()} cores, {today()}."
            "\n\n" + table + "\n"
        ),
        echo=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
