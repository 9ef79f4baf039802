"""The verified syscall table of a tailored kernel against its trace kernel, and their ROM, RAM
and syscall costs, from the `probe.json` documents of domain.guest.probe.

A syscall number is *absent* from a kernel when the probe's call returned -ENOSYS, and *present*
when it returned anything else, ended its child (exit, a signal) or did not return within its
alarm: only a missing entry point answers ENOSYS to every argument (the probe calls the few
implemented syscalls that answer ENOSYS to an unknown operation with a known one). Names come
from the source's syscall -> Kconfig table (`syscall-kconfig.json`, domain.syscalls.kconfig_table),
which also gives each syscall's condition; evaluated on a kernel's `.config` it predicts what the
probe should find, and every number where they differ is listed.

- `compare(tailored, trace, table, tailored_config, trace_config)`: the report's
  `syscall_table` section.
- `resources(tailored, trace, tailored_sizes, trace_sizes)`: the report's `resources` section:
  ROM (bzImage and module bytes), RAM (MemTotal - MemAvailable after boot) and the benchmarks,
  as tailored / trace ratios. Under QEMU TCG absolute times mean little, and a round's speed
  follows the host's load; `spin` (a user-space loop timed in the same boot) gives a ratio
  normalised by the CPU speed each boot got.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional

from kernel_rules.domain.map.conditions import evaluate
from kernel_rules.domain.syscalls.kconfig_table import decode

FORMAT = "kernel_rules/verified-syscalls@1"
BENCHMARKS = ("getpid", "walk")
CALIBRATION = "spin"


def names_by_number(table: Mapping) -> Dict[int, str]:
    """{number: name} of a `syscall-kconfig.json` document."""
    return {row["number"]: name for name, row in table["syscalls"].items()}


def absent_numbers(probe: Mapping) -> List[int]:
    """The numbers whose call returned -ENOSYS in `probe` (a probe.json document)."""
    return sorted(int(n) for n, s in probe["syscalls"].items() if s["enosys"])


def _kernel_table(probe: Mapping, names: Mapping[int, str]) -> dict:
    absent = set(absent_numbers(probe))
    probed = {int(n) for n in probe["syscalls"]}
    named = sorted(n for n in names if n in probed)
    return {
        "kernel": probe["kernel"],
        "present": sum(1 for n in named if n not in absent),
        "absent": [{"number": n, "name": names[n]} for n in named if n in absent],
        # numbers without a name in the table that answered anyway (none on a sane kernel)
        "unnamed_present": sorted(n for n in probed - set(names) if n not in absent),
    }


def _predicted(row: Mapping, config: Optional[Mapping[str, str]]) -> Optional[bool]:
    if config is None:
        return None
    return evaluate(decode(row["formula"]), config)


def compare(
    tailored: Mapping,
    trace: Mapping,
    table: Mapping,
    tailored_config: Optional[Mapping[str, str]] = None,
    trace_config: Optional[Mapping[str, str]] = None,
) -> dict:
    """The verified tables of both kernels (probe.json documents that `passed`), what the
    tailored kernel removed (absent there, present on the trace kernel) or added, and where a
    probe disagrees with the table's condition evaluated on that kernel's `.config`."""
    names = names_by_number(table)
    rows = {row["number"]: row for row in table["syscalls"].values()}
    mine, theirs = set(absent_numbers(tailored)), set(absent_numbers(trace))

    def item(n: int) -> dict:
        row = rows[n]
        return {"number": n, "name": names[n], "condition": row["condition"]}

    disagreements = []
    for label, probe, config in (
        ("tailored", tailored, tailored_config),
        ("trace_kernel", trace, trace_config),
    ):
        absent = set(absent_numbers(probe))
        for n in sorted(rows):
            if str(n) not in probe["syscalls"]:
                continue
            predicted = _predicted(rows[n], config)
            if predicted is not None and predicted == (n in absent):
                disagreements.append(
                    {
                        **item(n),
                        "kernel": label,
                        "table_says": "present" if predicted else "absent",
                        "probe_says": "absent" if n in absent else "present",
                    }
                )
    named = sorted(
        n for n in names if str(n) in tailored["syscalls"] and str(n) in trace["syscalls"]
    )
    return {
        "format": FORMAT,
        "numbers_probed": len(named),
        "tailored": _kernel_table(tailored, names),
        "trace_kernel": _kernel_table(trace, names),
        "removed": [item(n) for n in named if n in mine and n not in theirs],
        "added": [item(n) for n in named if n not in mine and n in theirs],
        "absent_on_both": [names[n] for n in named if n in mine and n in theirs],
        "table_disagreements": disagreements,
    }


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(a / b, 3) if a is not None and b else None


def _best(probe: Mapping, name: str) -> Optional[int]:
    bench = probe.get("bench", {}).get(name)
    return bench["best_ns"] if bench else None


def resources(
    tailored: Optional[Mapping],
    trace: Optional[Mapping],
    tailored_sizes: Mapping,
    trace_sizes: Mapping,
) -> dict:
    """ROM, RAM and benchmark figures of both kernels and their tailored / trace ratios;
    `tailored` and `trace` are probe.json documents (None or failed: their figures are None)."""

    def rom(sizes: Mapping) -> dict:
        modules = sizes.get("modules_bytes", 0)
        return {
            "bzImage": sizes["bzImage"],
            "modules": modules,
            "total": sizes["bzImage"] + modules,
        }

    def used(probe: Optional[Mapping]) -> Optional[int]:
        mem = probe.get("meminfo") if probe else None
        return mem["used_kb"] if mem else None

    ok = {k: p if p and p.get("passed") else None for k, p in (("t", tailored), ("k", trace))}
    rom_t, rom_k = rom(tailored_sizes), rom(trace_sizes)
    out = {
        "rom_bytes": {
            "tailored": rom_t,
            "trace_kernel": rom_k,
            "ratio": _ratio(rom_t["total"], rom_k["total"]),
        },
        "ram_used_kb": {
            "tailored": used(tailored),
            "trace_kernel": used(trace),
            "ratio": _ratio(used(tailored), used(trace)),
        },
        "accel": (tailored or trace or {}).get("accel"),
        "benchmarks": {},
    }
    spin_t = _best(ok["t"], CALIBRATION) if ok["t"] else None
    spin_k = _best(ok["k"], CALIBRATION) if ok["k"] else None
    for name in (CALIBRATION, *BENCHMARKS):
        t = _best(ok["t"], name) if ok["t"] else None
        k = _best(ok["k"], name) if ok["k"] else None
        count = (ok["t"] or ok["k"] or {}).get("bench", {}).get(name, {}).get("count")
        row = {"count": count, "tailored_ns": t, "trace_kernel_ns": k, "ratio": _ratio(t, k)}
        if name != CALIBRATION:
            row["ratio_spin_normalised"] = (
                _ratio(t * spin_k, k * spin_t) if None not in (t, k, spin_t, spin_k) else None
            )
        out["benchmarks"][name] = row
    return out
