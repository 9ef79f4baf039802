"""Boot a kernel with the syscall probe image and collect its verified syscall table, its memory
in use after boot and its micro-benchmarks (`probe.json`).

`python3 -m kernel_rules.domain.guest.probe --qemu ... --kernel bzImage --initrd probe.cpio.gz
--label NAME --out out`

The image is an app guest image (domain.guest.init's app /init) whose workload runs
`/usr/bin/syscall_probe` (guest/syscall_probe.c, compiled static by domain.guest.initramfs like an
app's `programs`): it calls every x86-64 syscall number from 0 to `LAST_NUMBER`, each in a
throwaway child, and then runs the benchmarks `BENCH_ROUNDS` times. Its output reaches the host
only inside the app /init's framed report (domain.guest.protocol.workload_report), and is read
with `protocol.parse_probe`; the memory figures are the app /init's `KR_MEMINFO` line, printed
right after the init marker (before the probe runs).

`out/probe.json` (`FORMAT`): {"format", "kernel" (the label), "accel", "passed", "reason",
"boot_seconds" (guest uptime at init), "seconds" (the whole run), "meminfo" ({"total_kb",
"available_kb", "used_kb"} or null), "last_number", "syscalls" ({"<nr>": {"outcome": ret |
signal | exit | timeout, "value", "enosys"}}), "bench" ({"<name>": {"count", "rounds_ns",
"best_ns"}})}; `out/console.log` is the whole console. Exit 0 when the probe ran to its end, 1
otherwise (the reason on stdout; probe.json is written either way).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from kernel_rules.domain.guest.app_check import run_app
from kernel_rules.domain.guest.protocol import (
    PROBE_DONE,
    meminfo,
    parse_probe,
    workload_report,
)
from kernel_rules.domain.guest.qemu import (
    BootSpec,
    add_machine_arguments,
    cmdline_problem,
    machine_of,
)

FORMAT = "kernel_rules/syscall-probe@1"
LAST_NUMBER = 460  # x86-64 syscall numbers of Linux 6.1 end at 450; the rest must be ENOSYS
BENCH_ROUNDS = 5
ENOSYS = 38
PROGRAM = "/usr/bin/syscall_probe"
WORKLOAD = "probe.sh"


def workload_script(last: int = LAST_NUMBER, rounds: int = BENCH_ROUNDS) -> str:
    """The probe image's workload (`/app/probe.sh`)."""
    return f"#!/bin/sh\nexec {PROGRAM} {int(last)} {int(rounds)}\n"


def probe_document(
    label: str, accel: str, run: dict, output_text: str, console: str, last: int
) -> dict:
    """probe.json (see the module docstring) from an app-check run (`run_app`'s dict) and the
    workload's decoded output."""
    parsed = parse_probe(output_text)
    mem = meminfo(console)
    reason = run["reason"]
    if not reason and not parsed.done:
        reason = f"the probe did not print {PROBE_DONE}"
    missing = [n for n in range(last + 1) if n not in parsed.syscalls]
    if not reason and missing:
        reason = f"the probe reported no outcome for syscall number(s) {missing[:10]}"
    return {
        "format": FORMAT,
        "kernel": label,
        "accel": accel,
        "passed": not reason,
        "reason": reason,
        "boot_seconds": run.get("boot_seconds"),
        "seconds": run.get("seconds"),
        "meminfo": {"total_kb": mem[0], "available_kb": mem[1], "used_kb": mem[0] - mem[1]}
        if mem
        else None,
        "last_number": last,
        "syscalls": {
            str(nr): {
                "outcome": kind,
                "value": value,
                "enosys": kind == "ret" and value == -ENOSYS,
            }
            for nr, (kind, value) in parsed.syscalls.items()
        },
        "bench": {
            name: {
                "count": rounds[0][0],
                "rounds_ns": [ns for _count, ns in rounds],
                "best_ns": min(ns for _count, ns in rounds),
            }
            for name, rounds in parsed.bench.items()
        },
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="probe", description=__doc__.splitlines()[0])
    add_machine_arguments(p)
    p.add_argument("--initrd", required=True)
    p.add_argument("--label", required=True, help="the kernel's name in probe.json")
    p.add_argument("--accel", choices=("tcg", "kvm"), default="tcg")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--last", type=int, default=LAST_NUMBER)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    problem = cmdline_problem(args.cmdline, "")
    if problem:
        print(f"kernel_rules: syscall probe refused: {problem}")
        return 1
    machine = machine_of(args)
    spec = BootSpec(args.qemu, args.kernel, args.initrd, args.cmdline, machine, args.accel)
    run = run_app(spec, args.timeout, None)
    console = run.pop("console")
    details = run.pop("details")
    doc = probe_document(
        args.label, args.accel, run, workload_report(console).text, console, args.last
    )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "console.log"), "w") as f:
        f.write(console)
    with open(os.path.join(args.out, "probe.json"), "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    if not doc["passed"]:
        print(f"FAIL syscall probe of {args.label}: {doc['reason']}; {details}")
        return 1
    absent = sum(1 for s in doc["syscalls"].values() if s["enosys"])
    print(
        f"PASS syscall probe of {args.label}: {len(doc['syscalls']) - absent} numbers answer, "
        f"{absent} are ENOSYS; run {doc['seconds']} s ({args.accel})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
