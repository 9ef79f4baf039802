#!/usr/bin/env python3
"""The tool's own timings on Debian's cloud kernel: unpack, trace, map, compose, build.

Runs `./pants --no-local-cache package` on examples/debian-cloud targets (so every step runs
again, except Kbuild's own work, which the warm trees keep incremental) and reads each step's
duration from Pants' `Starting:`/`Completed:` log lines. Builds: the full (cold) and incremental
build numbers come from the `build` section of each tailored kernel's report.json (objects
compiled and Kbuild seconds of the build that produced it), so package the kernels first:
`./pants package examples/debian-cloud::` (the first tailored kernel builds in a cold tree, the
others in the warm trees it left).

Writes JSON (default docs/benchmarks/distro-timings.json), which `benchmarks/distro.py --timings`
puts in its table, and prints it.

Usage: .venv/bin/python benchmarks/distro_timings.py [--out FILE] [--no-rerun]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist/examples.debian-cloud"
KERNELS = ("nginx-kernel", "redis-kernel", "memcached-kernel", "all-kernel")
_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d\d) \[INFO\] (Starting|Completed): (.*)$")


def step_durations(log: str) -> List[Tuple[str, float]]:
    """(description, seconds) of every process Pants logged as started and completed."""
    started: Dict[str, datetime] = {}
    out = []
    for line in log.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%H:%M:%S.%f")
        if m.group(2) == "Starting":
            started[m.group(3)] = t
        elif m.group(3) in started:
            out.append((m.group(3), round((t - started.pop(m.group(3))).total_seconds(), 1)))
    return out


def run_pants(*targets: str) -> str:
    proc = subprocess.run([str(REPO / "pants"), "--no-local-cache", "--no-colors", "package",
                           *targets], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"./pants package {' '.join(targets)} failed:\n{proc.stderr[-4000:]}")
    return proc.stderr


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "docs/benchmarks/distro-timings.json"))
    p.add_argument("--no-rerun", action="store_true",
                   help="only read the report.json files (no uncached Pants run)")
    args = p.parse_args()
    result: dict = {"steps": {}, "builds": {}}
    if not args.no_rerun:
        log = run_pants("examples/debian-cloud:nginx-kernel")
        names = {
            "Unpack and measure the prebuilt kernel": "unpack + measure the prebuilt kernel",
            "(boot)": "trace the boot (QEMU TCG)",
            "Map the trace of examples/debian-cloud:virtio": "map the boot trace",
            "(app)": "trace the nginx window (QEMU TCG)",
            "Map the trace of examples/debian-cloud:nginx": "map the nginx trace",
            "Compose examples/debian-cloud:nginx-kernel": "compose (Debian model, MaxSAT, olddefconfig)",
            "Build kernel examples/debian-cloud:nginx-kernel": "Kbuild, warm tree, same config",
        }
        for desc, seconds in step_durations(log):
            for key, name in names.items():
                if key in desc:
                    result["steps"][name] = seconds
        addresses = {}
        for name in ("virtio", "nginx"):
            doc = json.loads((DIST / name / "config-set.json").read_text())
            addresses[name] = doc["stats"]["addresses"]
        result["addresses"] = addresses
    for kernel in KERNELS:
        report = DIST / kernel / "report.json"
        if report.exists():
            r = json.loads(report.read_text())
            result["builds"][kernel] = {**r.get("build", {}),
                                        "compose_seconds": r.get("composition", {}).get("seconds")}
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
