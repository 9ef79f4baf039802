#!/usr/bin/env python3
"""The tool's own timings on Debian's cloud kernel: unpack, trace, map, compose, build.

Runs `./pants --no-local-cache package examples/debian-cloud:virtio examples/debian-cloud:nginx`
(so unpacking the prebuilt kernel, both traces and both mappings run again) and reads each step's
duration from Pants' `Starting:`/`Completed:` log lines; the composition's timings come from
each tailored kernel's report.json. Builds: the full (cold) and incremental
build numbers come from the `build` section of each tailored kernel's report.json (objects
compiled and Kbuild seconds of the build that produced it), so package the kernels first:
`./pants package examples/debian-cloud::` (the first tailored kernel builds in a cold tree, the
others in the warm trees it left).

Full builds: the last build of each tailored kernel that compiled at least 90% of its objects
is kept in the JSON (`full_builds`), since later packaging of the same kernel is incremental.

`--incremental` measures adding apps to an existing tailored kernel instead: run it after
`nginx-kernel` is built and before `all-kernel` is. It snapshots the warm tree that holds
nginx-kernel's configuration, packages all-kernel (nginx + redis + memcached), and compares what
Kbuild compiled with Kbuild's lower bound for that configuration delta
(`kernel_rules.domain.kbuild_deps`), and its time with nginx-kernel's full build.

Writes JSON (default docs/benchmarks/distro-timings.json, merged with what is there), which
`benchmarks/distro.py --timings` puts in its table, and prints it.

Usage: .venv/bin/python benchmarks/distro_timings.py [--out FILE] [--no-rerun] [--incremental]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist/examples.debian-cloud"
KERNELS = ("nginx-kernel", "redis-kernel", "memcached-kernel", "all-kernel")
FULL_BUILD: dict = {}  # kernel -> the last build that compiled >= 90% of its objects
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


def run_pants(*targets: str, cached: bool = False) -> str:
    flags = [] if cached else ["--no-local-cache"]
    proc = subprocess.run([str(REPO / "pants"), *flags, "--no-colors", "package", *targets],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"./pants package {' '.join(targets)} failed:\n{proc.stderr[-4000:]}")
    return proc.stderr


def incremental() -> dict:
    """Add redis and memcached to nginx-kernel (-> all-kernel) in nginx-kernel's warm tree."""
    sys.path.insert(0, str(REPO))
    from kernel_rules.domain.fragments import parse_config
    from kernel_rules.domain.kbuild import LAST_BUILD, object_files
    from kernel_rules.domain.kbuild_deps import (
        changed_files, changed_symbols, generated_digests, lower_bound, object_deps)

    trees_root = Path.home() / ".cache/pants/named_caches/kernel_rules/trees"
    base = parse_config((DIST / "nginx-kernel/config").read_text())
    tree = next((t for t in sorted(trees_root.glob("*/*")) if (t / ".config").exists()
                 and parse_config((t / ".config").read_text()) == base), None)
    if tree is None:
        sys.exit("no warm tree holds nginx-kernel's configuration: package it first")
    old_text = (tree / ".config").read_text()
    deps, gen = object_deps(str(tree)), generated_digests(str(tree))
    full = FULL_BUILD.get("nginx-kernel") or {}
    log = run_pants("examples/debian-cloud:all-kernel", cached=True)
    new = parse_config((DIST / "all-kernel/config").read_text())
    if parse_config((tree / ".config").read_text()) != new:
        sys.exit(f"all-kernel was not built in {tree} (the closest tree): cannot compare")
    stats = json.loads((tree / LAST_BUILD).read_text())
    changed = changed_symbols(parse_config(old_text), new)
    bound = lower_bound(deps, changed, object_files(str(tree)), changed_files(
        gen, generated_digests(str(tree))))
    compiled = set(stats["compiled_objects"])
    build_s = next((s for d, s in step_durations(log) if d.startswith("Build kernel")), None)
    return {"from": "nginx-kernel", "to": "all-kernel", "changed_symbols": sorted(changed),
            "compiled": len(compiled), "lower_bound": len(bound),
            "outside_lower_bound": sorted(compiled - bound), "kbuild_seconds": stats["seconds"],
            "build_step_seconds": build_s, "full_build_seconds": full.get("seconds"),
            "ratio_to_full": round(stats["seconds"] / full["seconds"], 3)
            if full.get("seconds") else None,
            "machine_load_1min": round(os.getloadavg()[0], 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "docs/benchmarks/distro-timings.json"))
    p.add_argument("--no-rerun", action="store_true",
                   help="only read the report.json files (no uncached Pants run)")
    p.add_argument("--incremental", action="store_true",
                   help="measure nginx-kernel -> all-kernel in the warm tree (see above)")
    args = p.parse_args()
    out = Path(args.out)
    result: dict = json.loads(out.read_text()) if out.exists() else {}
    result.setdefault("steps", {})
    result["builds"] = {}
    FULL_BUILD.update(result.get("full_builds", {}))
    for kernel in KERNELS:  # a build that compiled (nearly) everything is a full build
        report = DIST / kernel / "report.json"
        if report.exists():
            b = json.loads(report.read_text()).get("build") or {}
            if b.get("objects") and b.get("compiled", 0) >= 0.9 * b["objects"]:
                FULL_BUILD[kernel] = b
    result["full_builds"] = dict(FULL_BUILD)
    if args.incremental:
        result["incremental"] = incremental()
    elif not args.no_rerun:
        log = run_pants("examples/debian-cloud:virtio", "examples/debian-cloud:nginx")
        names = {
            "Unpack and measure the prebuilt kernel": "unpack + measure the prebuilt kernel",
            "(boot)": "trace the boot (QEMU TCG)",
            "Map the trace of examples/debian-cloud:virtio": "map the boot trace",
            "(app)": "trace the nginx window (QEMU TCG)",
            "Map the trace of examples/debian-cloud:nginx": "map the nginx trace",
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
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
