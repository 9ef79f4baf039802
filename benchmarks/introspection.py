#!/usr/bin/env python3
"""Layout manifests across configurations: the ipc kernel, minimised and not, against its trace
kernel, and processes listed from raw guest memory with each kernel's `layout.json`.

Packages, with the product's own targets:
- `examples/tracing:trace-kernel` (the baseline's trace kernel),
- `examples/tailored:ipc` (verified minimisation; SYSVIPC is off, so task_struct loses `sysvsem`
  and `sysvshm`),
- `examples/tailored:ipc-unminimised` (every traced requirement kept),

then prints each kernel's task_struct size and default field offsets side by side, and for each
kernel: boots it under QEMU with `kernel_rules.domain.introspect.guest_dump`'s guest, dumps its
physical memory over QMP, lists the processes from the dump with `introspect.ps` and its own
manifest (compared with the guest's own list), tries every other kernel's manifest on that dump
(each must be refused, exit code 3), and recovers the config from the bzImage with the kernel's
own scripts/extract-ikconfig (compared byte for byte with dist's `config`). Writes
docs/benchmarks/introspection.md.

Usage: .venv/bin/python benchmarks/introspection.py   (the minimised kernel's first
minimisation takes tens of minutes on 2 cores; with it cached, about a minute)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.pants import dist, package  # noqa: E402
from benchmarks.lib.report import qemu_version, timed, today, write_page  # noqa: E402
from benchmarks.lib.source import source_tree  # noqa: E402
from kernel_rules.domain.introspect import guest_dump  # noqa: E402

OUT = REPO / "docs/benchmarks/introspection.md"
KERNELS = {
    "trace kernel": "examples/tracing:trace-kernel",
    "ipc": "examples/tailored:ipc",
    "ipc-unminimised": "examples/tailored:ipc-unminimised",
}


def task_struct(path: Path) -> dict:
    """{"size": n, field: offset, ...} of task_struct in `path`/layout.json."""
    task = json.loads((path / "layout.json").read_text())["structs"]["task_struct"]
    return {"size": task["size"], **{f: v["offset"] for f, v in task["fields"].items()}}


def run_ps(layout: Path, dump: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kernel_rules.domain.introspect.ps", "--layout", str(layout)]
        + ["--json", str(dump)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def main() -> int:
    _, seconds = timed(package, *KERNELS.values())
    dists = {name: dist(address) for name, address in KERNELS.items()}
    layouts = {name: task_struct(path) for name, path in dists.items()}
    fields = sorted(set().union(*layouts.values()) - {"size"}, key=lambda f: (f != "size", f))
    names = list(KERNELS)
    reference = layouts["trace kernel"]

    lines = [
        "# Layout manifests across configurations",
        "",
        f"Generated {today()} by `benchmarks/introspection.py` ({qemu_version()}; packaging "
        f"took {seconds:.0f} s this run). Kernels: "
        + ", ".join(f"{n} = `{a}`" for n, a in KERNELS.items())
        + ".",
        "",
        "`task_struct` from each kernel's `layout.json` (offsets in bytes; **bold**: differs from "
        "the trace kernel's):",
        "",
        "| entry | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for f in ["size"] + fields:
        cells = []
        for n in names:
            v = layouts[n].get(f)
            text = "-" if v is None else str(v)
            cells.append(f"**{text}**" if v != reference.get(f) else text)
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    for n in names[1:]:
        differ = [f for f in ["size"] + fields if layouts[n].get(f) != reference.get(f)]
        lines.append("")
        lines.append(
            f"{n} vs the trace kernel: "
            + (f"{len(differ)} entries differ ({', '.join(differ)})" if differ else "the same")
            + "."
        )

    extract = Path(source_tree()) / "scripts/extract-ikconfig"
    lines += [
        "",
        "Processes from raw memory (`guest_dump` then `introspect.ps`), other manifests on the "
        "same dump, and the config recovered from the image:",
        "",
        "| kernel | guest's list | from memory | equal | other manifests refused | "
        "extract-ikconfig = dist config |",
        "|---|---:|---:|---|---|---|",
    ]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        image = work / "initramfs.cpio.gz"
        image.write_bytes(guest_dump.demo_image())
        for n in names:
            listed, dump = guest_dump.boot_and_dump(dists[n] / "bzImage", image, work)
            done = run_ps(dists[n] / "layout.json", dump)
            found = (
                {(p["pid"], p["comm"]) for p in json.loads(done.stdout)}
                if done.returncode == 0
                else set()
            )
            refused = [
                o
                for o in names
                if o != n and run_ps(dists[o] / "layout.json", dump).returncode == 3
            ]
            recovered = subprocess.run(
                [str(extract), str(dists[n] / "bzImage")], capture_output=True
            ).stdout
            same_config = recovered == (dists[n] / "config").read_bytes()
            ok = found == listed and len(refused) == len(names) - 1 and same_config
            if not ok:
                failures.append(n)
            lines.append(
                f"| {n} | {len(listed)} | {len(found)} | {'yes' if found == listed else 'NO'} | "
                f"{len(refused)} of {len(names) - 1} | {'yes' if same_config else 'NO'} |"
            )
            dump.unlink()
    lines += ["", "Every check passed." if not failures else f"FAILED: {', '.join(failures)}", ""]
    write_page(OUT, "\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
