#!/usr/bin/env python3
"""Verified minimisation on the tiny example: the tailored kernel with and without `minimise`.

Packages, in one run and with the product's own targets (the first minimised kernel verifies
its baseline, `examples/tracing:qemu-q35`, once; the added app's kernel reuses it):
- `examples/tailored:ipc-unminimised` (`minimise="off"`: every traced requirement kept),
- `examples/tailored:ipc` (`minimise="traced"`: soft requirements bisected by building and
  booting candidates and running the ipc workload),
- `examples/tailored:proc-reader-minimised` (`minimise="baseline"`: an app added on top of the
  verified baseline; only its delta is tried),
- `examples/tailored:q35-minimised` (no apps: the verified baseline itself as a kernel),
- `examples/minimal:kernel` (tinyconfig + boot.config: the smallest kernel that boots here),

and prints, from their `report.json` / `sizes.json` / `minimise.json`: enabled options, code (sum
of function sizes), vmlinux text and bzImage against the trace kernel; whether IPV6, PACKET, AIO,
SYSVIPC and SIGNALFD are on; the minimisation's tries, builds, objects compiled and wall time
(first run and a rerun, which must do no build and no boot); then runs `pants test` on every
minimised kernel (each app's workload on it, the way a user checks it). Writes
docs/benchmarks/minimise.md.

Usage: .venv/bin/python benchmarks/minimise.py   (the first minimisation takes one build and
boot per try: tens of minutes on 2 cores; a rerun takes seconds)
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.measure import read_config, read_sizes  # noqa: E402
from benchmarks.lib.pants import dist, package, pants  # noqa: E402
from benchmarks.lib.report import pct as _pct, timed, write_page  # noqa: E402

OUT = REPO / "docs/benchmarks/minimise.md"
FULL = "examples/tailored:ipc-unminimised"
MINI = "examples/tailored:ipc"
ADDED = "examples/tailored:proc-reader-minimised"
NO_APPS = "examples/tailored:q35-minimised"
WATCHED = ("IPV6", "PACKET", "AIO", "SYSVIPC", "SIGNALFD", "INET", "INPUT", "VT")


def _cost_row(label: str, record: dict) -> str:
    c = record["cost"]
    return (
        f"| {label} | {c['tries']} | {c['builds']} | {c['boots']} | {c['objects_compiled']} | "
        f"{c['build_seconds']:.0f} | {c['seconds_this_run']:.0f} | "
        f"{'yes' if record['complete'] else 'no (max ' + str(record['max_tries']) + ')'} |"
    )


def main(argv=None) -> int:
    argparse.ArgumentParser(prog="minimise", description=__doc__.splitlines()[0]).parse_args(argv)
    print(
        f"packaging examples/minimal:kernel and {FULL} (cached when built) ...",
        flush=True,
    )
    package("examples/minimal:kernel", FULL)
    print(
        f"packaging {MINI} (verifies the baseline first; one build and boot per try) ...",
        flush=True,
    )
    first_s = timed(package, MINI)[1]
    print(f"packaging {ADDED} (an added app on the verified baseline) ...", flush=True)
    added_log, added_s = timed(package, ADDED)
    print(f"packaging {NO_APPS} (no apps: the verified baseline as a kernel) ...", flush=True)
    package(NO_APPS)
    rerun_log, rerun_s = timed(package, MINI, ADDED, NO_APPS)
    print(f"pants test {MINI} {ADDED} {NO_APPS} ...", flush=True)
    tested = pants("test", MINI, ADDED, NO_APPS, check=False)
    rerun_builds = len(re.findall(r"Starting: Build kernel", rerun_log))
    rerun_boots = len(re.findall(r"Starting: Run \d+ app workload", rerun_log))
    added_dir = dist(ADDED)
    added = json.loads((added_dir / "report.json").read_text())
    added_record = json.loads((added_dir / "minimise.json").read_text())

    ipc, mini_dir = dist(FULL), dist(MINI)
    full = json.loads((ipc / "report.json").read_text())
    mini = json.loads((mini_dir / "report.json").read_text())
    record = json.loads((mini_dir / "minimise.json").read_text())
    bare = json.loads((dist(NO_APPS) / "report.json").read_text())
    minimal_sizes = read_sizes(dist("examples/minimal:kernel"))
    trace = full["sizes"]["trace_kernel"]
    rows = [
        (
            "trace kernel (examples/tracing:trace-kernel)",
            full["options"]["trace_kernel"]["enabled"],
            trace["code"],
            trace["text"],
            trace["bzImage"],
        ),
        (
            f"tailored, every traced requirement ({FULL})",
            full["options"]["tailored"]["enabled"],
            full["sizes"]["tailored"]["code"],
            full["sizes"]["tailored"]["text"],
            full["sizes"]["tailored"]["bzImage"],
        ),
        (
            f"tailored, verified minimisation ({MINI})",
            mini["options"]["tailored"]["enabled"],
            mini["sizes"]["tailored"]["code"],
            mini["sizes"]["tailored"]["text"],
            mini["sizes"]["tailored"]["bzImage"],
        ),
        (
            f"the verified baseline as a kernel, no apps ({NO_APPS})",
            bare["options"]["tailored"]["enabled"],
            bare["sizes"]["tailored"]["code"],
            bare["sizes"]["tailored"]["text"],
            bare["sizes"]["tailored"]["bzImage"],
        ),
    ]
    configs = {
        FULL: read_config(ipc / "config"),
        MINI: read_config(mini_dir / "config"),
    }
    cost = record["cost"]
    vb = json.loads((mini_dir / "verified-baseline.json").read_text())
    lines = [
        "# Verified minimisation (tiny example)",
        "",
        f"Machine: {platform.machine()}, QEMU TCG. Generated by `benchmarks/minimise.py`.",
        "",
        "| kernel | options | code | code / trace | vmlinux text | bzImage |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, opts, code, text, bz in rows:
        lines.append(f"| {name} | {opts} | {code} | {_pct(code, trace['code'])} | {text} | {bz} |")
    lines.append(
        f"| tinyconfig + boot.config (examples/minimal:kernel), for scale | - | - | - | "
        f"{minimal_sizes['vmlinux'][0]} | {minimal_sizes['bzImage']} |"
    )
    lines += [
        "",
        "| option | " + " | ".join(f"`{k}`" for k in configs) + " |",
        "|---|" + "---|" * len(configs),
    ]
    for sym in WATCHED:
        lines.append(
            f"| {sym} | "
            + " | ".join(c[sym] if c.get(sym, "n") != "n" else "off" for c in configs.values())
            + " |"
        )
    lines += [
        "",
        "Cost of each step (`build s`: Kbuild's time as measured when each try was built, "
        "cached or not; `wall s`: this run, where tries already cached are not repeated):",
        "",
        "| step | tries | builds | boots | objects compiled | build s | wall s | complete |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        _cost_row(f"verified baseline ({vb['baseline']}, boot check only)", vb),
        _cost_row(f"{MINI}, its own tries on it", record),
        _cost_row(f"added app: {ADDED}, its own tries on it", added_record),
        "",
        f"Wall time of the packaging runs: {MINI} {first_s:.0f} s (baseline included), "
        f"then {ADDED} {added_s:.0f} s "
        f"({len(re.findall(r'Starting: Build kernel', added_log))} builds, "
        f"{len(re.findall(r'Starting: Run [0-9]+ app workload', added_log))} boots), then a "
        f"rerun of the three {rerun_s:.0f} s with {rerun_builds} builds and {rerun_boots} boots.",
        f"The added app's kernel: {added['options']['tailored']['enabled']} options, code "
        f"{added['sizes']['tailored']['code']} "
        f"({_pct(added['sizes']['tailored']['code'], trace['code'])} of the trace kernel's); "
        + ", ".join(
            f"`{r['name']}` {'passed' if r['passed'] else 'FAILED'}" for r in added["app_results"]
        )
        + ".",
        "",
        f"Verified baseline: {len(vb['removed'])} of "
        f"{sum(len(g['symbols']) for g in vb['groups'])} boot-time soft requirements left out: "
        + (", ".join(f"`{r}`" for r in vb["removed"]) or "none")
        + ". Needed by the boot (the try that proved it): "
        + (
            ", ".join(
                f"`{k['item']}` ({k['proved_by_try']})" for k in vb["kept"] if k["proved_by_try"]
            )
            or "none"
        )
        + ".",
        "",
        f'Minimisation (`minimise="{record["mode"]}"`): {cost["tries"]} tries, '
        f"{cost['builds']} builds ({cost['objects_compiled']} objects compiled), {cost['boots']} "
        f"boots, {cost['build_seconds']:.0f} s of Kbuild as measured when each try was built; "
        f"{'complete (1-minimal over the soft requirements)' if record['complete'] else 'incomplete: minimise_max_tries=' + str(record['max_tries']) + ' ran out'}. "
        f"This run: {first_s:.0f} s wall (tries already cached are not repeated), then a rerun "
        f"{rerun_s:.0f} s with {rerun_builds} builds and {rerun_boots} boots.",
        "",
        "Apps passing on the minimised kernel: "
        + ", ".join(
            f"`{r['name']}` {'passed' if r['passed'] else 'FAILED'}" for r in mini["app_results"]
        )
        + ".",
        "",
        f"Left out ({len(record['removed'])} soft requirements): "
        + ", ".join(f"`{r}`" for r in record["removed"])
        + ".",
        "",
        "Kept, with the failing try that left out only it or only its group: "
        + ", ".join(
            f"`{k['item']}` (try {k['proved_by_try']})"
            for k in record["kept"]
            if k["proved_by_try"]
        )
        + ".",
        "",
        "Kept, not decided when the tries ran out: "
        + (", ".join(f"`{k['item']}`" for k in record["kept"] if not k["proved_by_try"]) or "none")
        + ".",
        "",
        f"`pants test {MINI} {ADDED} {NO_APPS}`: exit code {tested.returncode}; "
        + "; ".join(
            line.strip().lstrip("✓𐄂✕ ").rstrip(".")
            for line in (tested.stdout + tested.stderr).splitlines()
            if re.search(r"examples/tailored:\S+ (succeeded|failed)", line)
        )
        + " (`memoized`: Pants had the verdict of these very images and workloads, from the "
        "tries).",
        "",
        "A requirement left out is not an option turned off: the solver keeps an option on "
        "when a remaining requirement needs it (`NET` for `UNIX`).",
    ]
    write_page(OUT, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
