#!/usr/bin/env python3
"""Composition: the solved configuration against the Cozart-style one, for every example.

For each `tailored_kernel` in examples/tailored, after `pants package` has built it:
- *solved*: the tailored kernel itself (MaxSAT over the Kconfig model, objective `size`, checked by
  `olddefconfig`), with its composition time from `compose.json`;
- *closure*: the same requirements composed the way Cozart does it: every option a trace
  requires on, closed over its direct `depends on` (`compose.close_over_dependencies`), every
  other visible option off (as `make allnoconfig KCONFIG_ALLCONFIG=<closure>` would), completed by
  `make olddefconfig` and built by the same pipeline: a `kernel_image` with that `base_config`,
  one per example, declared in a BUILD file the script writes to benchmarks/compose-scratch/
  (removed afterwards) and built with `./pants package`.

Reports enabled options (y + m), vmlinux text/data/bss and bzImage size of both, whether the
closure kernel meets every requirement, and the time the solver pipeline took, all from the
packages' own outputs (config, sizes.json, compose.json; code bytes from `nm`). Prints a Markdown
table and writes docs/benchmarks/compose.md.

Usage: .venv/bin/python benchmarks/compose.py   (~5 min per example with cold Kbuild trees;
a warm rebuild of a similar configuration is much faster)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.measure import code_bytes, enabled, read_config, read_sizes  # noqa: E402
from benchmarks.lib.pants import dist, package, scratch_targets  # noqa: E402
from benchmarks.lib.report import write_page  # noqa: E402
from benchmarks.lib.source import source_tree  # noqa: E402
from kernel_rules.domain.compose.solver import close_over_dependencies  # noqa: E402
from kernel_rules.domain.kconfig.fragments import config_lines  # noqa: E402
from kernel_rules.domain.kconfig.tree import load_kconfig  # noqa: E402
from kernel_rules.domain.compose.tailor import holds  # noqa: E402

EXAMPLES = ("ipc-unminimised", "httpd", "sqlite", "proc-reader", "all")
SCRATCH = REPO / "benchmarks/compose-scratch"
OUT = REPO / "docs/benchmarks/compose.md"


def closure_config(requirements: dict, kconf, trace: dict) -> tuple:
    """The Cozart-style `.config` input: the closure on, every other prompted option off, and
    every choice as the trace kernel has it (so that compression, -Os and the unwinder are the
    same on both sides and the comparison is about composition alone)."""
    import kconfiglib as K

    wanted = {}
    for symbol, by_value in requirements.items():
        values = set(by_value)
        if values & {"y", "ym"}:
            wanted[symbol] = "y"
        elif "m" in values:
            wanted[symbol] = "m"
    closed = close_over_dependencies(wanted, kconf)
    values = {}
    for sym in kconf.unique_defined_syms:
        if sym.orig_type in (K.BOOL, K.TRISTATE) and any(n.prompt for n in sym.nodes):
            values[sym.name] = closed.get(sym.name, "n")
    for choice in kconf.unique_choices:
        for member in choice.syms:
            values[member.name] = "y" if trace.get(member.name) == "y" else "n"
    for name, value in closed.items():
        values[name] = value
    return "".join(line + "\n" for line in config_lines(values)), len(closed)


def _trace_config() -> dict:
    package("examples/tracing:trace-kernel")
    return read_config(dist("examples/tracing:trace-kernel") / "config")


def main(argv=None) -> int:
    argparse.ArgumentParser(prog="compose", description=__doc__.splitlines()[0]).parse_args(argv)
    t0 = time.monotonic()
    print("packaging the tailored examples (cached when already built) ...", flush=True)
    package(*(f"examples/tailored:{name}" for name in EXAMPLES))
    src = source_tree()
    kconf = load_kconfig(src, "x86_64", {**os.environ, "PATH": "/usr/bin:/bin"})
    trace = _trace_config()
    files = {}
    build = []
    closures = {}
    for name in EXAMPLES:
        reqs = json.loads((dist(f"examples/tailored:{name}") / "requirements.json").read_text())
        text, raw = closure_config(reqs["requirements"], kconf, trace)
        files[f"{name}.config"] = text
        closures[name] = raw
        build.append(
            f'kernel_image(name="{name}", source="//third_party/linux:linux-6.1",\n'
            f'    base_config="{name}.config")\n'
        )
    print("building the Cozart-style kernels ...", flush=True)
    with scratch_targets(SCRATCH, "".join(build), files) as spec:
        package(f"{spec}::")

    rows = []
    for name in EXAMPLES:
        tailored = dist(f"examples/tailored:{name}")
        cozart = dist(f"{SCRATCH.relative_to(REPO)}:{name}")
        reqs = json.loads((tailored / "requirements.json").read_text())["requirements"]
        compose = json.loads((tailored / "compose.json").read_text())
        solved_cfg = read_config(tailored / "config")
        cozart_cfg = read_config(cozart / "config")
        s_sizes, c_sizes = read_sizes(tailored), read_sizes(cozart)
        missed = [s for s, by in reqs.items() for v in by if not holds(v, cozart_cfg.get(s, "n"))]
        rows.append(
            {
                "name": name,
                "requirements": compose["requirements"],
                "solved_options": enabled(solved_cfg),
                "closure_raw": closures[name],
                "closure_options": enabled(cozart_cfg),
                "solved_text": code_bytes(tailored / "vmlinux"),
                "closure_text": code_bytes(cozart / "vmlinux"),
                "solved_data_bss": s_sizes["vmlinux"][1] + s_sizes["vmlinux"][2],
                "closure_data_bss": c_sizes["vmlinux"][1] + c_sizes["vmlinux"][2],
                "solved_bz": s_sizes["bzImage"],
                "closure_bz": c_sizes["bzImage"],
                "closure_missed": len(missed),
                "missed_sample": sorted(missed)[:4],
                "compose_s": round(sum(compose["seconds"].values()), 2),
                "solve_s": compose["seconds"].get("solve (MaxSAT)"),
                "rounds": compose["rounds"],
            }
        )

    lines = [
        "# Composition: solved vs Cozart-style closure",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}. Generated by "
        "`.venv/bin/python benchmarks/compose.py` "
        f"({time.monotonic() - t0:.0f} s this run).",
        "",
        "*solved*: the `tailored_kernel` (MaxSAT, objective `size`, checked by `olddefconfig`). "
        "*closure*: the traced options closed over their direct dependencies, every other "
        "prompted option off, completed by `olddefconfig` (Cozart-style), built by the same "
        "pipeline. *closure raw*: options in the closure before `olddefconfig`. Code: the sum "
        "of the function symbols' sizes (`nm -S`; x86_64 pads `.text` to 2 MiB, which hides "
        "differences in `size`); data+bss from `size`; bzImage: the file.",
        "",
        "| kernel | requirements | options solved | options closure (raw) | code solved "
        "| code closure | data+bss solved | data+bss closure | bzImage solved "
        "| bzImage closure | requirements the closure misses | compose time (solve) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['requirements']} | {r['solved_options']} | "
            f"{r['closure_options']} ({r['closure_raw']}) | {r['solved_text']} | "
            f"{r['closure_text']} ({100 * r['solved_text'] / r['closure_text']:.1f}%) | "
            f"{r['solved_data_bss']} | {r['closure_data_bss']} | {r['solved_bz']} | "
            f"{r['closure_bz']} | {r['closure_missed']} | {r['compose_s']} s "
            f"({r['solve_s']} s, {r['rounds']} round) |"
        )
    misses = [
        f"- {r['name']}: e.g. {', '.join(r['missed_sample'])}" for r in rows if r["closure_missed"]
    ]
    if misses:
        lines += [
            "",
            "Requirements the closure kernel does not meet (closing over direct "
            "dependencies ignores `select`, choices and `#ifndef` requirements):",
            *misses,
        ]
    lines += [
        "",
        "Compose time is the whole composition process: parse Kconfig, build the "
        "model, solve, run `olddefconfig` (per round).",
    ]
    write_page(OUT, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
