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
(`kernel_rules.domain.build.kbuild_deps`), and its time with nginx-kernel's full build.

Writes JSON (default docs/benchmarks/distro-timings.json, merged with what is there), which
`benchmarks/distro.py --timings` puts in its table, and prints it.

`--page` (after `benchmarks/distro.py`, which rewrites docs/benchmarks.md) appends the tool's own
section to docs/benchmarks.md from that JSON and from docs/benchmarks/kconfig-debian.md (the
differential Kconfig model test on Debian's universe).

Usage: .venv/bin/python benchmarks/distro_timings.py [--out FILE] [--no-rerun] [--incremental]
       .venv/bin/python benchmarks/distro_timings.py --page
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.kbuild import delta_bound, last_build, snapshot, warm_tree_for  # noqa: E402
from benchmarks.lib.measure import read_config  # noqa: E402
from benchmarks.lib.pants import dist, package, step_durations  # noqa: E402

DIST = dist("examples/debian-cloud:x").parent
KERNELS = ("nginx-kernel", "redis-kernel", "memcached-kernel", "all-kernel")
FULL_BUILD: dict = {}  # kernel -> the last build that compiled >= 90% of its objects


def run_pants(*targets: str, cached: bool = False) -> str:
    return package(*targets, flags=() if cached else ("--no-local-cache",))


def incremental() -> dict:
    """Add redis and memcached to nginx-kernel (-> all-kernel) in nginx-kernel's warm tree."""
    base = read_config(DIST / "nginx-kernel/config")
    tree = warm_tree_for(base)
    if tree is None:
        sys.exit("no warm tree holds nginx-kernel's configuration: package it first")
    before = snapshot(tree)
    full = FULL_BUILD.get("nginx-kernel") or {}
    log = run_pants("examples/debian-cloud:all-kernel", cached=True)
    new = read_config(DIST / "all-kernel/config")
    if read_config(tree / ".config") != new:
        sys.exit(f"all-kernel was not built in {tree} (the closest tree): cannot compare")
    stats = last_build(tree)
    changed, _, bound = delta_bound(before, tree)
    compiled = set(stats["compiled_objects"])
    build_s = next((s for d, s in step_durations(log) if d.startswith("Build kernel")), None)
    return {
        "from": "nginx-kernel",
        "to": "all-kernel",
        "changed_symbols": sorted(changed),
        "compiled": len(compiled),
        "lower_bound": len(bound),
        "outside_lower_bound": sorted(compiled - bound),
        "kbuild_seconds": stats["seconds"],
        "build_step_seconds": build_s,
        "full_build_seconds": full.get("seconds"),
        "ratio_to_full": round(stats["seconds"] / full["seconds"], 3)
        if full.get("seconds")
        else None,
        "machine_load_1min": round(os.getloadavg()[0], 2),
    }


PAGE = REPO / "docs/benchmarks.md"
MARK = "<!-- distro_timings.py --page -->"


def page_section(data: dict) -> str:
    steps = data.get("steps", {})
    addresses = data.get("addresses", {})
    full = data.get("full_builds", {}).get("nginx-kernel", {})
    inc = data.get("incremental", {})
    quiet = data.get("incremental_quiet", {})
    compose = {k: v.get("compose_seconds", {}) for k, v in data.get("builds", {}).items()}
    lines = [
        MARK,
        "## The tool on Debian's cloud kernel",
        "",
        "From `.venv/bin/python benchmarks/distro_timings.py` ([benchmarks/distro-timings.json]"
        "(benchmarks/distro-timings.json)); uncached Pants runs, wall clock, on a machine "
        "that was also running this benchmark's builds.",
        "",
        "| step | seconds | goal |",
        "|---|---:|---|",
    ]
    for name, seconds in sorted(steps.items()):
        goal = ""
        if name == "map the boot trace":
            goal = (
                f"{addresses.get('virtio', 0):,} addresses on the 590 MB debug vmlinux: "
                f"< 60 s, {'met' if seconds < 60 else 'NOT met'}"
            )
        if name == "map the nginx trace":
            goal = f"{addresses.get('nginx', 0):,} addresses"
        lines.append(f"| {name} | {seconds} | {goal} |")
    for kernel, parts in sorted(compose.items()):
        total = round(sum(parts.values()), 2)
        lines.append(
            f"| compose {kernel} (parse, model, MaxSAT, olddefconfig) | {total} | "
            f"16k-symbol Debian model: < 30 s, {'met' if total < 30 else 'NOT met'} |"
        )
    if full:
        lines.append(
            f"| full build of nginx-kernel ({full['compiled']} of {full['objects']} "
            f"objects) | {full['seconds']} | |"
        )
    for label, m in (("", inc), (" (earlier run, quieter machine)", quiet)):
        if not m:
            continue
        ratio = m["kbuild_seconds"] / full["seconds"] if full.get("seconds") else None
        lines.append(
            f"| add redis + memcached to nginx-kernel{label}: {m['compiled']} objects, lower bound "
            f"{m['lower_bound']}, outside it {len(m['outside_lower_bound'])} | "
            f"{m['kbuild_seconds']} | nothing outside the lower bound: "
            f"{'met' if not m['outside_lower_bound'] else 'NOT met'}; delta "
            f"{', '.join(m['changed_symbols'])} (a leaf): <= 15% of the full build: "
            + (f"{ratio:.1%}, {'met' if ratio <= 0.15 else 'NOT met'}" if ratio else "?")
            + " |"
        )
    lines += [
        "",
        "The earlier incremental run used the tracer and Kbuild object naming of an "
        'earlier commit (its 3 objects "outside" were naming artefacts, since fixed); the '
        "delta and the configurations were the same.",
        "",
    ]
    kd = REPO / "docs/benchmarks/kconfig-debian.md"
    if kd.exists():
        text = kd.read_text()
        rows = [
            ln
            for ln in text.splitlines()
            if ln.startswith(
                (
                    "| conf keeps it",
                    "| Debian model accepts",
                    "| Debian model rejects",
                    "| inside the universe",
                    "| distinct configurations",
                )
            )
        ]
        lines += [
            "## Kconfig model on Debian's universe (differential test)",
            "",
            "`.venv/bin/python benchmarks/kconfig_debian.py` "
            "([benchmarks/kconfig-debian.md](benchmarks/kconfig-debian.md)): 200 "
            "`conf --randconfig` configurations in Debian's cloud universe, each checked "
            "against the model and against `conf --olddefconfig`:",
            "",
            "| | plain | pinned |",
            "|---|---:|---:|",
            *rows,
            "",
        ]
    return "\n".join(lines) + "\n"


def write_page(data: dict) -> None:
    text = PAGE.read_text() if PAGE.exists() else ""
    if MARK in text:
        text = text[: text.index(MARK)]
    PAGE.write_text(text.rstrip("\n") + "\n\n" + page_section(data))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="distro_timings", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "docs/benchmarks/distro-timings.json"))
    p.add_argument(
        "--no-rerun",
        action="store_true",
        help="only read the report.json files (no uncached Pants run)",
    )
    p.add_argument(
        "--incremental",
        action="store_true",
        help="measure nginx-kernel -> all-kernel in the warm tree (see above)",
    )
    p.add_argument(
        "--page",
        action="store_true",
        help="append the tool's section to docs/benchmarks.md from the JSON",
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    result: dict = json.loads(out.read_text()) if out.exists() else {}
    if args.page:
        write_page(result)
        print(page_section(result))
        return 0
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
            result["builds"][kernel] = {
                **r.get("build", {}),
                "compose_seconds": r.get("composition", {}).get("seconds"),
            }
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
