#!/usr/bin/env python3
"""Tracing cost: a traced QEMU (TCG) run vs the same run untraced, and the mapping step.

Inputs come from the real pipeline: `pants package examples/tracing:trace-kernel` (bzImage,
vmlinux and config in dist/, a cache hit when built before) and `pants peek examples/tracing:`
(every kernel_baseline of that kernel with its machine, and every app_profile on them). The
initramfs images are built by the product's initramfs program with the product's /init and the
argv of the rules (rules/boot.py boot_initramfs, rules/trace.py app_initramfs; benchmarks/lib/guest.py),
in a scratch directory.

For each baseline boot and each app, REPEATS rounds, each timing back to back (the order
alternates between rounds), from process start to the guest powering off (QEMU exits):
  traced   `python3 -m kernel_rules.domain.trace.tracer boot|app ...` with the argv of rules/trace.py
           run_trace: QEMU with `-d in_asm` logging, then the log parsed and the outputs written.
  plain    QEMU with the tracer's own command line minus `-d in_asm -D <log>` (and, for apps, minus
           the gdbstub stop at the window): the same kernel, initramfs, machine and console, and
           the tracer's `-icount`/`-rtc`/`-seed` determinism flags. Boots and app windows are both
           traced under `-icount` (the app guest never waits for the host), so both are
           deterministic.
  no -icount   the same run without the determinism flags, as `pants test` boots and app checks run.
The ratio is the median over the rounds of traced / plain within the round (a paired ratio, so
that load from other processes on the host, which drifts between rounds, mostly cancels); the
goal is at most 3x.

Then the mapper once on each round's trace of each guest, as rules/trace.py map_trace runs it
(host python3, PYTHONPATH with the domain modules and kconfiglib, Pants' named cache
`kernel_rules` holding the unpacked source; unpacked first by the product, untimed, if missing):
seconds, how many distinct traces the rounds gave (with deterministic traces: 1 of REPEATS for
every guest, boots and apps; more would be a determinism bug) and the counts from each
config-set.json. Prints Markdown tables and writes docs/benchmarks/trace.md.

Usage: .venv/bin/python benchmarks/trace.py   (~8 minutes on 2 cores with the kernel built;
a kernel build adds ~3 minutes)
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.guest import app_image, boot_image, domain_env, run_domain  # noqa: E402
from benchmarks.lib.pants import dist, package, peek  # noqa: E402
from benchmarks.lib.report import (  # noqa: E402
    cpu_model,
    median_range,
    qemu_version,
    timed,
    today,
    tool,
    write_page,
)
from benchmarks.lib.source import named_cache, source_tree, pinned_tarball  # noqa: E402
from kernel_rules.domain.trace import tracer  # noqa: E402
from kernel_rules.domain.guest.protocol import (  # noqa: E402
    CHECK_PARAM,
    DONE,
    INIT_MARKER,
    verdict,
    workload_report,
)
from kernel_rules.domain.guest.qemu import BootSpec, Machine, watch_console  # noqa: E402

EXAMPLE = "examples/tracing"
KERNEL = "trace-kernel"
REPEATS = 5
GOAL = 3.0
OUT = REPO / "docs/benchmarks/trace.md"


@dataclass
class Guest:
    name: str  # the target's name in EXAMPLE
    mode: str  # boot | app
    spec: BootSpec
    timeout: float
    baseline_cmdline: str  # the baseline's `cmdline` field (part of its machine digest)
    success: Optional[str] = None  # app_profile `success` regex
    initramfs_sha256: str = ""


def _guests(tmp: Path, kernel: Path) -> List[Guest]:
    """Every kernel_baseline of the example kernel and every app_profile on one, with images."""
    targets = peek(f"{EXAMPLE}:")
    qemu = tool("qemu-system-x86_64")
    base_dir = REPO / EXAMPLE
    guests: List[Guest] = []
    machines: Dict[str, dict] = {}
    for name, t in sorted(targets.items()):
        if t["target_type"] != "kernel_baseline" or t["kernel"] not in (
            f":{KERNEL}",
            f"{EXAMPLE}:{KERNEL}",
        ):
            continue
        machines[name] = t
        script = base_dir / t["boot_script_raw"] if t["boot_script_raw"] else None
        image = boot_image(tmp, name, script)
        spec = BootSpec(
            qemu,
            str(kernel),
            str(image),
            f"{t['cmdline']} nokaslr {CHECK_PARAM}",
            Machine(t["machine"], t["cpus"], t["memory"], tuple(t["devices"] or ())),
        )
        guests.append(Guest(name, "boot", spec, t["timeout"], t["cmdline"]))
    for name, t in sorted(targets.items()):
        if t["target_type"] != "app_profile" or t["baseline"].lstrip(":") not in machines:
            continue
        b = machines[t["baseline"].lstrip(":")]
        files = [
            (f, f"app/{os.path.relpath(f, base_dir)}")
            for pattern in t["files_raw"]
            for f in sorted(glob.glob(str(base_dir / pattern), recursive=True))
        ]
        image = app_image(
            tmp,
            name,
            f"{EXAMPLE}:{name}",
            base_dir / t["workload_raw"],
            files,
            t["binaries"],
            [base_dir / p for p in t["programs_raw"]],
        )
        spec = BootSpec(
            qemu,
            str(kernel),
            str(image),
            f"{b['cmdline']} nokaslr",
            Machine(b["machine"], b["cpus"], b["memory"], tuple(b["devices"] or ())),
        )
        guests.append(
            Guest(
                name,
                "app",
                spec,
                t["timeout"],
                b["cmdline"],
                t["success"],
                hashlib.sha256(image.read_bytes()).hexdigest(),
            )
        )
    return guests


def _traced(g: Guest, env: Dict[str, str], out: Path) -> float:
    """The tracer with the argv of rules/trace.py run_trace; checked as the rule checks it."""
    m = g.spec.machine
    argv = [
        tool("python3"),
        "-m",
        "kernel_rules.domain.trace.tracer",
        g.mode,
        "--qemu",
        g.spec.qemu,
        "--kernel",
        g.spec.kernel,
        "--initrd",
        g.spec.initrd,
        "--cmdline",
        g.spec.cmdline,
        "--machine",
        m.machine,
        "--cpus",
        str(m.cpus),
        "--memory",
        m.memory,
        "--timeout",
        str(g.timeout),
        "--out",
        str(out),
    ]
    for dev in m.devices:
        argv += ["--device", dev]
    result, seconds = timed(
        subprocess.run, argv, env=env, cwd=out.parent, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"tracing {g.name} failed:\n{result.stderr[-4000:]}")
    if g.mode == "app":
        failed = verdict(workload_report((out / "console.log").read_text()), g.success)
        if failed:
            raise SystemExit(f"{g.name}: the traced workload failed: {failed}")
    return seconds


def _plain(g: Guest, work: Path, icount: bool = True) -> float:
    """QEMU without instruction logging (and without the tracer's gdbstub stop), until the guest
    powers off; checked like the trace. `icount`: with the tracer's determinism flags."""
    work.mkdir(parents=True)
    log = str(work / "qemu.log")
    console = work / "console.log"
    flags = tracer.DETERMINISM if icount else ()
    argv = tracer.trace_argv(g.spec, log, f"file:{console}" if g.mode == "boot" else "stdio", flags)
    i = argv.index("-d")
    assert argv[i : i + 4] == ["-d", "in_asm", "-D", log], argv
    del argv[i : i + 4]
    start = time.monotonic()
    if g.mode == "boot":
        subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=g.timeout,
        )
        seconds = time.monotonic() - start
        text = console.read_text(errors="replace")
        ok = INIT_MARKER in text
    else:  # the console's input stays silent, as the tracer's does (the guest never waits)
        run = watch_console(
            argv,
            g.timeout,
            lambda buf, proc: 10.0 if DONE.encode() in buf else None,
            stdin=subprocess.PIPE,
        )
        seconds = time.monotonic() - start
        text = run.console.decode(errors="replace").replace("\r", "")
        ok = not run.timed_out and not verdict(workload_report(text), g.success)
    if not ok or os.path.exists(log):
        tail = "\n".join(text.splitlines()[-30:])
        raise SystemExit(f"the plain run of {g.name} failed:\n{tail}")
    return seconds


def _map(
    g: Guest,
    env: Dict[str, str],
    trace: Path,
    inputs: Path,
    cache: Path,
    tarball: Path,
    sha256: str,
    out: Path,
) -> float:
    """The mapper with the argv of rules/trace.py map_trace."""
    machine = {
        "machine": g.spec.machine.machine,
        "cpus": g.spec.machine.cpus,
        "memory": g.spec.machine.memory,
        "devices": list(g.spec.machine.devices),
        "cmdline": g.baseline_cmdline,
    }
    traced_on = {
        "source_sha256": sha256,
        "trace_config_sha256": hashlib.sha256((inputs / "config").read_bytes()).hexdigest(),
        "machine_sha256": hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest(),
        "workload_sha256": g.initramfs_sha256,
    }
    argv = [
        tool("python3"),
        "-m",
        "kernel_rules.domain.map.mapper",
        "--tarball",
        str(tarball),
        "--sha256",
        sha256,
        "--cache",
        str(cache),
        "--vmlinux",
        str(inputs / "vmlinux"),
        "--config",
        str(inputs / "config"),
        "--addresses",
        str(trace / "addresses.txt"),
        "--trace",
        str(trace / "trace.json"),
        "--kind",
        "baseline" if g.mode == "boot" else "app",
        "--target",
        f"{EXAMPLE}:{g.name}",
        "--traced-on",
        json.dumps(traced_on, sort_keys=True),
        "--out",
        str(out),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    return timed(run_domain, argv, env, out.parent)[1]


def _span(values: List[int]) -> str:
    return str(min(values)) + (f"-{max(values)}" if max(values) != min(values) else "")


def _paired_ratio(times: Dict[str, List[float]], kind: str) -> float:
    """Median over the rounds of traced / `kind` within the round (load drifts between rounds)."""
    return statistics.median(t / p for t, p in zip(times["traced"], times[kind]))


def _machine_line(load: tuple) -> str:
    return (
        f"Machine: {os.cpu_count()} cores ({cpu_model()}), {platform.machine()}, "
        f"{qemu_version()}, TCG (the tracer never uses KVM), guests with 1 vCPU; load average "
        f"at start {load[0]:.2f}, {today()}."
    )


def main(argv: Optional[List[str]] = None) -> int:
    argparse.ArgumentParser(prog="trace", description=__doc__.splitlines()[0]).parse_args(argv)
    began = time.monotonic()
    tarball, sha256 = pinned_tarball()
    load = os.getloadavg()
    package_s = timed(package, f"{EXAMPLE}:{KERNEL}", concurrent=True)[1]
    with tempfile.TemporaryDirectory(prefix="kr-trace-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        inputs = tmp / "kernel"  # a copy: other pants runs may rewrite dist/ meanwhile
        inputs.mkdir()
        for f in ("bzImage", "vmlinux", "config"):
            shutil.copy(dist(f"{EXAMPLE}:{KERNEL}") / f, inputs / f)
        env = domain_env(tmp)
        guests = _guests(tmp, inputs / "bzImage")
        times: Dict[str, Dict[str, List[float]]] = {g.name: {} for g in guests}
        for r in range(REPEATS):
            for g in guests:
                kinds = ["traced", "plain", "no-icount"]
                for kind in kinds if r % 2 == 0 else kinds[::-1]:
                    work = tmp / "runs" / f"{g.name}-{kind}-{r}"
                    if kind == "traced":
                        work.mkdir(parents=True)
                        s = _traced(g, env, work / "trace")
                    else:
                        s = _plain(g, work, icount=kind == "plain")
                    times[g.name].setdefault(kind, []).append(s)
                    print(
                        f"  round {r + 1}/{REPEATS} {g.name:12} {kind:9} {s:6.2f} s",
                        file=sys.stderr,
                    )
        load_end = os.getloadavg()
        cache = named_cache()
        source_tree()  # unpacked by the product once per sha256, not timed
        mapping = {}
        for g in guests:
            m: Dict[str, list] = {"seconds": [], "requirements": [], "distinct": []}
            for r in range(REPEATS):
                trace = tmp / "runs" / f"{g.name}-traced-{r}" / "trace"
                m["distinct"].append((trace / "addresses.txt").read_bytes())
                out = tmp / "map" / f"{g.name}-{r}"
                m["seconds"].append(_map(g, env, trace, inputs, cache, tarball, sha256, out))
                doc = json.loads((out / "config-set.json").read_text())
                m["requirements"].append(len(doc["requirements"]))
                for key, value in doc["stats"].items():
                    if isinstance(value, int):
                        m.setdefault(key, []).append(value)
            mapping[g.name] = m
            print(f"  mapped {g.name:12} {median_range(m['seconds'])} s", file=sys.stderr)

    lines = [
        "| guest | mode | traced s | plain s | traced / plain | plain without -icount s "
        "| traced / that | at most 3x? |",
        "|" + "---|" * 8,
    ]
    over = []
    for g in guests:
        t = times[g.name]
        ratio = _paired_ratio(t, "plain")
        ratio2 = _paired_ratio(t, "no-icount")
        worst = max(ratio, ratio2)
        if worst > GOAL:
            over.append(f"{g.name} ({worst:.2f}x)")
        lines.append(
            f"| {g.name} | {g.mode} | {median_range(t['traced'])} | {median_range(t['plain'])} | "
            f"{ratio:.2f}x | {median_range(t['no-icount'])} | {ratio2:.2f}x | "
            f"{'yes' if worst <= GOAL else '**no**'} |"
        )
    table = "\n".join(lines)
    map_lines = [
        "| guest | kind | distinct traces | addresses | mapped | unmapped | source lines "
        "| files | requirements | mapper s |",
        "|" + "---|" * 10,
    ]
    varying = []
    for g in guests:
        m = mapping[g.name]
        distinct = len(set(m["distinct"]))
        if distinct > 1:
            varying.append(f"{g.name} ({_span(m['requirements'])} requirements)")
        map_lines.append(
            f"| {g.name} | {'baseline' if g.mode == 'boot' else 'app'} | {distinct} of {REPEATS} | "
            f"{_span(m['addresses'])} | {_span(m['mapped_addresses'])} | "
            f"{_span(m['unmapped_addresses'])} | {_span(m['lines'])} | {_span(m['files'])} | "
            f"{_span(m['requirements'])} | {median_range(m['seconds'])} |"
        )
    map_table = "\n".join(map_lines)
    total = time.monotonic() - began
    verdict_line = (
        f"Every guest is within the {GOAL:.0f}x goal."
        if not over
        else f"Over the {GOAL:.0f}x goal: {', '.join(over)}."
    )
    varying_note = (
        "Every guest gave the same trace in every round: boots and app windows are "
        "both traced under `-icount`."
        if not varying
        else "Traces that differ between rounds: " + ", ".join(varying) + ". Every trace "
        "runs under `-icount` (boots and app windows alike), so the same inputs should "
        "give the same trace: this is a determinism bug to look into."
    )
    footer = (
        f"Inputs: `pants package {EXAMPLE}:{KERNEL}` took {package_s:.1f} s "
        f"(a cache hit if the kernel was built before). Whole script: {total:.0f} s."
    )
    print(
        table + "\n\n" + verdict_line + "\n\n" + map_table + "\n\n" + varying_note + "\n\n" + footer
    )
    write_page(
        OUT,
        (
            "# Tracing cost\n\n"
            "Written by `benchmarks/trace.py` (re-run it to refresh). The example trace kernel "
            f"(`{EXAMPLE}:{KERNEL}`), every baseline boot and app profile of `{EXAMPLE}`. "
            "*Traced*: the whole `kernel_rules.domain.trace.tracer` process with the argv the rules give it "
            "(QEMU with `-d in_asm` logging, then the log parsed and the outputs written). *Plain*: "
            "QEMU with the tracer's own command line minus `-d in_asm -D <log>` and, for apps, minus "
            "the gdbstub stop at the window (same kernel, initramfs, machine and console, and the "
            "tracer's `-icount`/`-rtc`/`-seed` determinism flags: boots and app windows are both "
            "traced under `-icount`, and the app guest never waits for the host). *Plain without "
            "-icount*: the same without the determinism flags, as `pants test` boots and app checks "
            "run. "
            "Each time runs from process start until the guest powers off (QEMU exits): median "
            f"(min-max) of {REPEATS} rounds, the variants back to back in alternating order. Ratios: "
            "the median over the rounds of traced / plain within a round. "
            f"Goal: traced at most {GOAL:.0f}x plain.\n\n"
            + _machine_line(load)
            + f" Load average after the QEMU runs {load_end[0]:.2f} (another "
            "process on this host can skew single runs; the paired ratios absorb most of it).\n\n"
            + table
            + "\n\n"
            + verdict_line
            + "\n\n"
            "## Mapping\n\n"
            "`kernel_rules.domain.map.mapper` once on each round's trace of each guest, with the argv "
            "the rules give it and the unpacked source already in Pants' named cache (host "
            "`python3`). *Distinct traces*: how many different addresses.txt the rounds gave (the "
            "traces are deterministic, so 1 for every guest); counts are min-max over the rounds, "
            "seconds median (min-max). From config-set.json: *mapped* "
            "addresses resolved to a source line by addr2line, *source lines* and *files* the "
            "distinct lines and files they resolve to, *requirements* the config symbols the set "
            "requires on or off.\n\n" + map_table + "\n\n" + varying_note + "\n\n" + footer + "\n"
        ),
        echo=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
