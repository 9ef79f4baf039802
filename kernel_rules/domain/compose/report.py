"""The report of a tailored kernel: what it enables and weighs against its trace kernel, how long
it takes to boot, and which applications passed on it.

`build_report` gathers plain data (parsed configs, `sizes.json` of both builds, the composed
`requirements.json` and the config sets it came from, the composition stats of
`domain.compose.tailor`, the results of `domain.guest.app_check`) into one JSON-able dict, the
`report.json` of the package. From that dict alone, `render_markdown` writes `report.md` and
`render_html` writes `report.html` (the Jinja2 template `templates/report.html.j2`: tables and
inline SVG bar charts, no scripts, styles or fonts from elsewhere). Both are deterministic: the
same report gives the same bytes.

As a step: `python3 -m kernel_rules.domain.compose.report --report report.json --out out` writes
`out/report.md` and `out/report.html`. Exit codes: 0 success; 3 the report is not a report of
`FORMAT` (JSON `{"error": ...}` on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

FORMAT = "kernel_rules/tailored-report@1"


def _count(values: Mapping[str, str]) -> Dict[str, int]:
    y = sum(1 for v in values.values() if v == "y")
    m = sum(1 for v in values.values() if v == "m")
    return {"y": y, "m": m, "enabled": y + m}


SYMBOL_KINDS = {"t": "code", "r": "rodata", "d": "data", "b": "bss"}


def symbol_sizes(nm_output: str) -> Dict[str, int]:
    """Bytes of code, rodata, data and bss in `nm -S --defined-only vmlinux` output: the sum of
    the symbols' own sizes, so section alignment padding (x86_64 pads .text to 2 MiB) does not
    hide differences."""
    out = {kind: 0 for kind in SYMBOL_KINDS.values()}
    for line in nm_output.splitlines():
        f = line.split()
        if len(f) == 4 and f[2].lower() in SYMBOL_KINDS:
            out[SYMBOL_KINDS[f[2].lower()]] += int(f[1], 16)
    return out


def _sizes(sizes: Mapping, symbols: Mapping[str, int]) -> Dict[str, int]:
    text, data, bss = sizes["vmlinux"]
    out = {"text": text, "data": data, "bss": bss, "bzImage": sizes["bzImage"], **symbols}
    if "modules_bytes" in sizes:  # a distribution kernel's loadable modules
        out["modules_bytes"] = sizes["modules_bytes"]
    return out


# A top-level directory holding at least this share of either kernel's code is also broken down
# by its subdirectories (descending through single-child levels such as arch/ -> arch/x86/).
BIG_SHARE = 0.10
# How many subdirectories a breakdown shows; the rest are summed as OTHER.
CHILDREN_SHOWN = 12
OTHER = "(other)"


def _group_sizes(objects: Mapping[str, int], depth: int) -> Dict[str, int]:
    """Bytes per directory prefix of `depth` path components; a file that is not that deep
    counts under its own path."""
    out: Dict[str, int] = {}
    for path, size in objects.items():
        parts = path.split("/")
        key = "/".join(parts[:depth]) if len(parts) > depth else path
        out[key] = out.get(key, 0) + int(size)
    return out


def _rows(tailored: Mapping[str, int], trace: Mapping[str, int]) -> List[dict]:
    names = set(tailored) | set(trace)
    rows = [{"name": n, "tailored": tailored.get(n, 0), "trace": trace.get(n, 0)} for n in names]
    return sorted(rows, key=lambda r: (-r["trace"], -r["tailored"], r["name"]))


def _children(
    prefix: str, tailored: Mapping[str, int], trace: Mapping[str, int]
) -> Tuple[str, List[dict]]:
    """The breakdown of directory `prefix` one level down, skipping levels with one child:
    (the prefix broken down, its CHILDREN_SHOWN biggest children plus OTHER)."""
    while True:
        depth = prefix.count("/") + 2
        mine = {p: s for p, s in tailored.items() if p.startswith(prefix + "/")}
        theirs = {p: s for p, s in trace.items() if p.startswith(prefix + "/")}
        rows = _rows(_group_sizes(mine, depth), _group_sizes(theirs, depth))
        only = rows[0]["name"] if len(rows) == 1 else None
        if only is None or only in mine or only in theirs:  # several children, or one file
            break
        prefix = only
    shown, rest = rows[:CHILDREN_SHOWN], rows[CHILDREN_SHOWN:]
    if rest:
        shown.append(
            {
                "name": OTHER,
                "tailored": sum(r["tailored"] for r in rest),
                "trace": sum(r["trace"] for r in rest),
            }
        )
    return prefix, shown


def subsystem_sizes(tailored_objects: Mapping[str, int], trace_objects: Mapping[str, int]) -> dict:
    """Code bytes by top-level source directory of both kernels (the "objects" of their
    `sizes.json`: source file -> bytes), biggest first in the trace kernel; directories with at
    least BIG_SHARE of either kernel's code also by subdirectory."""
    totals = {"tailored": sum(tailored_objects.values()), "trace": sum(trace_objects.values())}
    groups = []
    for row in _rows(_group_sizes(tailored_objects, 1), _group_sizes(trace_objects, 1)):
        big = any(
            totals[k] and row[k] >= BIG_SHARE * totals[k] and "/" not in row["name"] for k in totals
        ) and any(p.startswith(row["name"] + "/") for p in (*tailored_objects, *trace_objects))
        if big:
            prefix, children = _children(row["name"], tailored_objects, trace_objects)
        else:
            prefix, children = row["name"], []
        groups.append({**row, "breakdown_of": prefix, "children": children})
    return {"totals": totals, "groups": groups}


_LOCATION = re.compile(r" \([^()]*\)$")
_INDEX = re.compile(r"\[\d+\]$")
PHASE_ORDER = ("init", "boot", "app")
NO_PHASE = "not recorded"


def source_label(source: str) -> str:
    """The source a requirement is counted under: `kind target` of a config set without the
    evidence's location, a field without its index (`<target> field` and the field's name), or the
    policy text as is."""
    return _INDEX.sub("", _LOCATION.sub("", source))


def _phase_key(phases: Sequence[str]) -> str:
    if not phases:
        return NO_PHASE
    order = {p: i for i, p in enumerate(PHASE_ORDER)}
    return " + ".join(sorted(set(phases), key=lambda p: (order.get(p, len(order)), p)))


def requirements_by_source(requirements: Mapping, config_sets: Sequence[Mapping]) -> dict:
    """The composed requirements (`requirements.json`) counted per source and per trace phase.

    A requirement with several sources counts once under each. Its phase under a config set's
    source is what that set recorded for the item (config-set@2 `phases`: `init` kernel
    initialisation, `boot` user-space boot, `app` the app's window), joined with ` + ` when it
    was seen in several; NO_PHASE for sets without phases and for fields and policies."""
    phases_of: Dict[str, Dict[str, Tuple[str, ...]]] = {}
    for doc in config_sets:
        items = {s: tuple(r.get("phases", ())) for s, r in doc.get("requirements", {}).items()}
        items.update({c["formula"]: tuple(c.get("phases", ())) for c in doc.get("conditions", [])})
        phases_of[f"{doc.get('kind')} {doc.get('target')}"] = items
    counts: Dict[str, Dict[str, dict]] = {}

    def add(item: str, label: str, on: bool) -> None:
        key = _phase_key(phases_of.get(label, {}).get(item, ()))
        row = counts.setdefault(label, {})
        cell = row.setdefault(key, {"on": 0, "off": 0})
        cell["on" if on else "off"] += 1

    for symbol, by_value in requirements.get("requirements", {}).items():
        for value, sources in by_value.items():
            for label in sorted({source_label(x) for x in sources}):
                add(symbol, label, value != "n")
    for formula, sources in requirements.get("conditions", {}).items():
        for label in sorted({source_label(x) for x in sources}):
            add(formula, label, True)
    used = {k for row in counts.values() for k in row}
    order = {p: i for i, p in enumerate(PHASE_ORDER)}
    phases = sorted(
        used,
        key=lambda k: (
            k == NO_PHASE,
            [order.get(p, len(order)) for p in k.split(" + ")],
            k,
        ),
    )
    rows = []
    for label in sorted(counts):
        cells = counts[label]
        rows.append(
            {
                "source": label,
                "phases": {k: cells[k]["on"] + cells[k]["off"] for k in phases if k in cells},
                "on": sum(c["on"] for c in cells.values()),
                "off": sum(c["off"] for c in cells.values()),
            }
        )
    return {
        "phases": phases,
        "by_source": rows,
        "symbols": len(requirements.get("requirements", {})),
        "conditions": len(requirements.get("conditions", {})),
        "relaxed": len(requirements.get("relaxed", [])),
    }


def build_report(
    target: str,
    baseline: str,
    apps: Sequence[str],
    tailored: Mapping[str, str],
    trace: Mapping[str, str],
    tailored_sizes: Mapping,
    trace_sizes: Mapping,
    tailored_symbols: Mapping[str, int],
    trace_symbols: Mapping[str, int],
    compose_stats: Mapping,
    build_stats: Optional[Mapping],
    app_results: Sequence[Mapping],
    minimisation: Optional[Mapping] = None,
    requirements: Optional[Mapping] = None,
    config_sets: Sequence[Mapping] = (),
    console_logs: Optional[Mapping[str, str]] = None,
    trace_kernel_kind: str = "built",
    syscall_table: Optional[Mapping] = None,
    resources: Optional[Mapping] = None,
) -> dict:
    """The report as a dict (see `FORMAT`); every input is already parsed. `minimisation` is the
    `minimise.json` document of a minimised kernel; `requirements` the composed
    `requirements.json` and `config_sets` the config-set documents it was composed from;
    `console_logs` maps an app's name to its check's console log, a path relative to the report;
    `trace_kernel_kind` is `built` (a `kernel_image`) or `distribution` (a `prebuilt_kernel`).
    `syscall_table` and `resources` are the sections of domain.syscalls.verified (`compare`, or
    {"error": ...} when a probe did not complete, and `resources`), kept as they are."""
    logs = dict(console_logs or {})
    boots = [r["boot_seconds"] for r in app_results if r.get("boot_seconds") is not None]
    only_trace = sorted(
        s for s, v in trace.items() if v in ("y", "m") and tailored.get(s, "n") not in ("y", "m")
    )
    return {
        "format": FORMAT,
        "target": target,
        "baseline": baseline,
        "apps": list(apps),
        "options": {
            "tailored": _count(tailored),
            "trace_kernel": _count(trace),
            "closure_of_requirements": compose_stats.get("closure_enabled"),
            "dropped_from_trace_kernel": len(only_trace),
        },
        "trace_kernel_kind": trace_kernel_kind,
        "sizes": {
            "tailored": _sizes(tailored_sizes, tailored_symbols),
            "trace_kernel": _sizes(trace_sizes, trace_symbols),
        },
        "subsystems": subsystem_sizes(
            tailored_sizes.get("objects", {}), trace_sizes.get("objects", {})
        ),
        "requirements": requirements_by_source(requirements, config_sets)
        if requirements is not None
        else None,
        "composition": {
            k: compose_stats.get(k)
            for k in ("objective", "requirements", "rounds", "weight", "seconds")
        },
        "build": {
            k: _without_missed((build_stats or {}).get(k))
            for k in (
                "compiled",
                "objects",
                "seconds",
                "tree",
                "distance",
                "estimate",
                "waited",
                "options",
                "lower_bound",
                "outside_lower_bound",
                "object_cache",
            )
        },
        "boot_seconds_to_init": {
            "median": statistics.median(boots) if boots else None,
            "runs": len(boots),
        },
        "app_results": [
            {
                **{k: r.get(k) for k in ("name", "passed", "reason", "boot_seconds", "seconds")},
                "console_log": logs.get(r.get("name")),
            }
            for r in app_results
        ],
        "all_apps_passed": all(r.get("passed") for r in app_results),
        "minimisation": _minimisation_summary(minimisation) if minimisation else None,
        "embedded_config": _embedded_config(tailored, tailored_sizes),
        "static_syscalls": _static_syscalls(compose_stats.get("static_syscalls")),
        "syscall_table": dict(syscall_table) if syscall_table is not None else None,
        "resources": dict(resources) if resources is not None else None,
    }


def _static_syscalls(stats: Optional[Mapping]) -> Optional[dict]:
    """compose.json's static syscall coverage, per app and what it costs; None when it is off."""
    if not stats:
        return None
    return {
        "scope": stats["scope"],
        "cost": stats.get("cost") or {"options": 0, "options_kept": [], "bytes_estimate": 0},
        "apps": [
            {
                "app": a["app"],
                "syscalls": a["syscalls"],
                "gated": sorted(a["gated"]),
                "options": sorted(set(a["gated"].values())),
                "not_in_trace_kernel": sorted(a["not_in_trace_kernel"]),
            }
            for a in stats["apps"]
        ],
    }


def _embedded_config(config: Mapping[str, str], sizes: Mapping) -> dict:
    """Whether the image embeds its `.config` (IKCONFIG) and the bytes that costs: the object
    holding the gzipped configuration, kernel/configs.o."""
    enabled = config.get("IKCONFIG") in ("y", "m")
    return {
        "enabled": enabled,
        "bytes": (sizes.get("objects") or {}).get("kernel/configs.c") if enabled else 0,
    }


def _minimisation_summary(m: Mapping) -> dict:
    tries = m["tries"]
    failing = {t["try"]: t for t in tries if not t["passed"]}
    vb = m.get("verified_baseline")
    baseline_proof = {k["item"]: k for k in (vb or {}).get("kept", [])}
    return {
        "mode": m["mode"],
        "complete": m["complete"],
        "cost": m["cost"],
        "verified_baseline": {
            "address": vb["address"],
            "considered": len(vb["considered"]),
            "removed": len(vb["removed"]),
            "complete": vb["complete"],
            "cost": vb["cost"],
        }
        if vb
        else None,
        "removed_groups": [g["name"] for g in m["groups"] if g["removed"]],
        "removed": m["removed"],
        "kept": [
            {
                "item": k["item"],
                "proved_by_try": k["proved_by_try"],
                "by_baseline": bool(k.get("by_baseline")),
                "failure": (failing[k["proved_by_try"]].get("reason") or "")[-600:]
                if k["proved_by_try"] in failing
                else (baseline_proof.get(k["item"]) or {}).get("failure"),
                "baseline_try": (baseline_proof.get(k["item"]) or {}).get("proved_by_try"),
            }
            for k in m["kept"]
        ],
        "tries": [
            {
                k: t.get(k)
                for k in (
                    "try",
                    "left_out",
                    "new_groups",
                    "passed",
                    "enabled",
                    "text",
                    "objects_compiled",
                )
            }
            for t in tries
        ],
    }


def _pct(a: float, b: float) -> str:
    return f"{100.0 * a / b:.1f}%" if b else "-"


def render_markdown(report: Mapping) -> str:
    """`report.md`: tables of options, sizes, boot time and app results."""
    o, s = report["options"], report["sizes"]
    t, k = s["tailored"], s["trace_kernel"]
    lines: List[str] = [
        f"# Tailored kernel `{report['target']}`",
        "",
        f"Baseline `{report['baseline']}`; apps: "
        + (", ".join(f"`{a}`" for a in report["apps"]) or "none")
        + ".",
        "",
        "| | tailored | trace kernel | tailored / trace |",
        "|---|---:|---:|---:|",
        f"| enabled options (y + m) | {o['tailored']['enabled']} | {o['trace_kernel']['enabled']}"
        f" | {_pct(o['tailored']['enabled'], o['trace_kernel']['enabled'])} |",
    ]
    for key, label in (
        ("code", "code (sum of function sizes)"),
        ("rodata", "rodata (symbols)"),
        ("data", "vmlinux data"),
        ("bss", "vmlinux bss"),
        ("text", "vmlinux text (`size`, padded)"),
        ("bzImage", "bzImage bytes"),
    ):
        lines.append(f"| {label} | {t[key]} | {k[key]} | {_pct(t[key], k[key])} |")
    lines += ["", _embedded_config_line(report.get("embedded_config"))]
    c = report["composition"]
    lines += [
        "",
        f"The closure of the same requirements over their direct dependencies (Cozart-style) "
        f"enables {o['closure_of_requirements']} options; {o['dropped_from_trace_kernel']} options "
        "of the trace kernel are off here.",
        "",
        f"Composition: objective `{c['objective']}`, {c['requirements']} requirements, "
        f"{c['rounds']} solver round(s); "
        + ", ".join(f"{name} {sec} s" for name, sec in (c.get("seconds") or {}).items())
        + ".",
    ]
    b = report["build"]
    if b.get("compiled") is not None:
        lines.append(
            f"Build: {b['compiled']} of {b['objects']} objects compiled in {b['seconds']} s"
            + (
                f" (estimated at {b['estimate']}"
                + (
                    ", in a warm tree it waited for: cheaper than a new one"
                    if b.get("waited")
                    else ""
                )
                + ")"
                if b.get("estimate") is not None
                else ""
            )
            + (
                f"; Kbuild's lower bound from the tree's last configuration: {b['lower_bound']}"
                + (
                    f", {len(b['outside_lower_bound'])} compiled outside it"
                    if b.get("outside_lower_bound")
                    else ""
                )
                if b.get("lower_bound") is not None
                else ""
            )
            + "."
        )
    boot = report["boot_seconds_to_init"]
    lines += [
        "",
        f"Boot to init (guest uptime, median of {boot['runs']} boots): {boot['median']} s.",
        "",
        "| app | result | boot to init (s) | whole run (s) |",
        "|---|---|---:|---:|",
    ]
    for r in report["app_results"]:
        verdict = "passed" if r["passed"] else f"FAILED: {r['reason']}"
        lines.append(f"| `{r['name']}` | {verdict} | {r['boot_seconds']} | {r['seconds']} |")
    if report.get("static_syscalls"):
        lines += _render_static_syscalls(report["static_syscalls"])
    if report.get("resources"):
        lines += _render_resources(report["resources"], compared_with(report))
    if report.get("syscall_table"):
        lines += _render_syscall_table(report["syscall_table"], compared_with(report))
    m = report.get("minimisation")
    if m:
        lines += _render_minimisation(m)
    return "\n".join(lines) + "\n"


def _render_static_syscalls(st: Mapping) -> List[str]:
    cost = st["cost"]
    lines = [
        "",
        f"## Static syscall coverage (`{st['scope']}`)",
        "",
        "Every option gating a syscall the apps' binaries can make is kept, traced or not. "
        f"It costs {cost['options']} option(s) ("
        + (", ".join(f"`{o}`" for o in cost["options_kept"]) or "none")
        + f") and about {cost['bytes_estimate']} bytes of the trace kernel's objects.",
        "",
        "| app | syscalls found | gated (options) | not in the trace kernel |",
        "|---|---:|---|---|",
    ]
    for a in st["apps"]:
        lines.append(
            f"| `{a['app']}` | {a['syscalls']} | {len(a['gated'])} ("
            + ", ".join(a["options"])
            + f") | {', '.join(a['not_in_trace_kernel']) or '-'} |"
        )
    return lines


def _fmt(value) -> str:
    return "-" if value is None else str(value)


def _ms(ns) -> str:
    return "-" if ns is None else f"{ns / 1e6:.1f}"


BENCH_LABELS = {
    "spin": "user-space loop ({count} iterations, calibration)",
    "getpid": "`getpid` x {count}",
    "walk": "walk over {count} entries (getdents64 + fstatat)",
}


def _render_resources(r: Mapping, other: str) -> List[str]:
    rom_t, rom_k = r["rom_bytes"]["tailored"], r["rom_bytes"]["trace_kernel"]
    ram = r["ram_used_kb"]
    lines = [
        "",
        "## ROM, RAM and the cost of a syscall",
        "",
        f"| | tailored | {other} | tailored / {other} |",
        "|---|---:|---:|---:|",
        f"| ROM: bzImage bytes | {rom_t['bzImage']} | {rom_k['bzImage']} | "
        f"{_pct(rom_t['bzImage'], rom_k['bzImage'])} |",
        f"| ROM: module bytes | {rom_t['modules']} | {rom_k['modules']} | "
        f"{_pct(rom_t['modules'], rom_k['modules'])} |",
        f"| ROM: total | {rom_t['total']} | {rom_k['total']} | {_fmt(r['rom_bytes']['ratio'])} |",
        f"| RAM in use after boot (MemTotal - MemAvailable, kB) | {_fmt(ram['tailored'])} | "
        f"{_fmt(ram['trace_kernel'])} | {_fmt(ram['ratio'])} |",
        "",
        f"Micro-benchmarks in the guest (best of its rounds, ms; QEMU `{r.get('accel')}`). Under "
        "TCG absolute times mean little and follow the host's load: read the ratios; the "
        "normalised ratio divides each boot's time by its own user-space loop's.",
        "",
        f"| benchmark | tailored (ms) | {other} (ms) | ratio | normalised ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, b in r["benchmarks"].items():
        label = BENCH_LABELS.get(name, name).format(count=_fmt(b.get("count")))
        lines.append(
            f"| {label} | {_ms(b['tailored_ns'])} | {_ms(b['trace_kernel_ns'])} | "
            f"{_fmt(b['ratio'])} | {_fmt(b.get('ratio_spin_normalised'))} |"
        )
    return lines


def _embedded_config_line(embedded: Optional[Mapping]) -> str:
    if not embedded or not embedded.get("enabled"):
        return (
            "The configuration is not embedded in the image (`embed_config=False`); "
            "`scripts/extract-ikconfig` cannot recover it."
        )
    return (
        f"The configuration is embedded in the image (IKCONFIG; `scripts/extract-ikconfig` "
        f"recovers it): {embedded.get('bytes')} bytes (kernel/configs.o)."
    )


def _render_syscall_table(t: Mapping, other: str) -> List[str]:
    lines = ["", "## Verified syscall table", ""]
    if "error" in t:
        return lines + [f"Not available: {t['error']}"]
    mine, theirs = t["tailored"], t["trace_kernel"]
    lines += [
        f"Every x86-64 syscall number called in the guest (each in a throwaway child); absent = "
        f"it returned ENOSYS. {t['numbers_probed']} named numbers probed.",
        "",
        f"| | tailored | {other} (`{theirs['kernel']}`) |",
        "|---|---:|---:|",
        f"| syscalls present | {mine['present']} | {theirs['present']} |",
        f"| syscalls absent (ENOSYS) | {len(mine['absent'])} | {len(theirs['absent'])} |",
        "",
        f"Removed here (absent on the tailored kernel, present on the {other}): "
        + (
            ", ".join(f"`{x['name']}` ({x['number']}, {x['condition']})" for x in t["removed"])
            or "none"
        )
        + ".",
        "",
        f"Present here but absent on the {other}: "
        + (", ".join(f"`{x['name']}`" for x in t["added"]) or "none")
        + ".",
        "",
        "Absent on both: " + (", ".join(f"`{n}`" for n in t["absent_on_both"]) or "none") + ".",
    ]
    if t["table_disagreements"]:
        lines += [
            "",
            "Where the probe and the syscall -> Kconfig table's condition disagree:",
            "",
            "| kernel | syscall | condition | table | probe |",
            "|---|---|---|---|---|",
        ]
        for d in t["table_disagreements"]:
            lines.append(
                f"| {d['kernel']} | `{d['name']}` ({d['number']}) | "
                f"{d['condition'].replace('|', chr(92) + '|')} | "
                f"{d['table_says']} | {d['probe_says']} |"
            )
    return lines


def _render_minimisation(m: Mapping) -> List[str]:
    cost = m["cost"]
    lines = [
        "",
        "## Verified minimisation",
        "",
        f"Soft requirements: `{m['mode']}`. {cost['tries']} tries ({cost['builds']} builds, "
        f"{cost['objects_compiled']} objects compiled, {cost['boots']} boots per app); "
        + (
            "complete: no kept requirement can be left out alone without a failure."
            if m["complete"]
            else "**incomplete**: `minimise_max_tries` ran out; this is the "
            "smallest passing candidate so far."
        ),
        *_render_verified_baseline(m.get("verified_baseline")),
        "",
        f"Left out ({len(m['removed'])}): "
        + (", ".join(f"`{r}`" for r in m["removed"]) or "nothing")
        + ".",
        "",
        "Had to stay:",
        "",
        "| requirement | proved by try | failure (tail) |",
        "|---|---:|---|",
    ]
    for k in m["kept"]:
        tail = (k["failure"] or "").strip().splitlines()[-1:] if k["failure"] else []
        proof = (
            f"baseline try {k['baseline_try']}"
            if k.get("baseline_try")
            else "baseline"
            if k.get("by_baseline")
            else (k["proved_by_try"] or "-")
        )
        lines.append(
            f"| `{k['item']}` | {proof} | "
            + (tail[0].replace("|", "\\|")[:160] if tail else "-")
            + " |"
        )
    lines += [
        "",
        "| try | new groups left out | passed | options | text |",
        "|---:|---|---|---:|---:|",
    ]
    for t in m["tries"]:
        lines.append(
            f"| {t['try']} | {', '.join(t['new_groups'] or []) or '(members)'} | "
            f"{'yes' if t['passed'] else 'no'} | {t['enabled'] or '-'} | "
            f"{t['text'] or '-'} |"
        )
    return lines


def _render_verified_baseline(vb: Optional[Mapping]) -> List[str]:
    if not vb:
        return []
    cost = vb["cost"]
    return [
        "",
        f"Started from the verified baseline `{vb['address']}`: its boot check left out "
        f"{vb['removed']} of its {vb['considered']} soft requirements in {cost['tries']} tries "
        f"({cost['builds']} builds, {cost['objects_compiled']} objects compiled, "
        f"{cost['build_seconds']} s of Kbuild), computed once and shared by every tailored "
        "kernel of that baseline"
        + ("." if vb["complete"] else " (**incomplete**: its `minimise_max_tries` ran out).")
        + " The tries below are this kernel's own: the apps' delta on top of it. A requirement "
        "its boot needed is marked `baseline` below.",
    ]


# --- report.html ----------------------------------------------------------------------------------

TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
HTML_TEMPLATE = "report.html.j2"
# Bar chart geometry, in SVG user units.
CHART_WIDTH = 760
CHART_LABEL = 190
CHART_VALUE = 110
BAR_HEIGHT = 9
ROW_HEIGHT = 2 * BAR_HEIGHT + 10
CHART_TOP = 26


def _kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB"


def bar_chart(title: str, rows: Sequence[Mapping], compared_with: str) -> dict:
    """The geometry of a horizontal bar chart of `rows` ({name, tailored, trace} bytes): per row
    a bar for the tailored kernel and one for the kernel it is compared with, on one scale."""
    top = max([r["tailored"] for r in rows] + [r["trace"] for r in rows] + [1])
    span = CHART_WIDTH - CHART_LABEL - CHART_VALUE
    out_rows = []
    for i, r in enumerate(rows):
        y = CHART_TOP + i * ROW_HEIGHT
        bars = []
        for j, (kind, label) in enumerate((("tailored", "tailored"), ("trace", compared_with))):
            value = r[kind]
            bars.append(
                {
                    "kind": kind,
                    "label": label,
                    "y": y + j * BAR_HEIGHT,
                    "width": round(span * value / top, 1),
                    "value": value,
                    "text": _kib(value),
                }
            )
        out_rows.append({"name": r["name"], "y": y, "bars": bars})
    return {
        "title": title,
        "width": CHART_WIDTH,
        "height": CHART_TOP + len(rows) * ROW_HEIGHT + 6,
        "label_width": CHART_LABEL,
        "bar_height": BAR_HEIGHT,
        "row_height": ROW_HEIGHT,
        "compared_with": compared_with,
        "rows": out_rows,
    }


def compared_with(report: Mapping) -> str:
    """What the tailored kernel is compared with: its trace kernel, which for a baseline on a
    `prebuilt_kernel` is the distribution's kernel."""
    return (
        "distribution kernel"
        if report.get("trace_kernel_kind") == "distribution"
        else "trace kernel"
    )


def html_charts(report: Mapping) -> List[dict]:
    """The charts of `report.html`: code by top-level directory, then one per big directory."""
    subsystems = report.get("subsystems")
    if not subsystems or not subsystems["groups"]:
        return []
    other = compared_with(report)
    charts = [bar_chart("Code by top-level source directory", subsystems["groups"], other)]
    for g in subsystems["groups"]:
        if g["children"]:
            charts.append(bar_chart(f"Code in {g['breakdown_of']}/", g["children"], other))
    return charts


def render_html(report: Mapping) -> str:
    """`report.html`: the report as one self-contained page (see the module docstring)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["kib"] = _kib
    env.filters["pct"] = lambda a, b: _pct(a, b)
    rows = [
        ("code", "code (sum of function sizes)"),
        ("rodata", "rodata (symbols)"),
        ("data", "vmlinux data"),
        ("bss", "vmlinux bss"),
        ("text", "vmlinux text (size, padded)"),
        ("bzImage", "bzImage bytes"),
    ]
    if "modules_bytes" in report["sizes"]["trace_kernel"]:
        rows.append(("modules_bytes", "loadable modules (.ko bytes)"))
    return env.get_template(HTML_TEMPLATE).render(
        r=report,
        compared_with=compared_with(report),
        size_rows=rows,
        charts=html_charts(report),
    )


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m kernel_rules.domain.compose.report",
        description="Render report.md and report.html from a tailored kernel's report.json.",
    )
    p.add_argument("--report", required=True, help="the report.json of build_report")
    p.add_argument("--out", required=True, help="directory for report.md and report.html")
    args = p.parse_args(argv)
    try:
        with open(args.report) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        print(json.dumps({"error": f"{args.report}: not a readable JSON report: {e}"}))
        return 3
    if not isinstance(report, dict) or report.get("format") != FORMAT:
        got = report.get("format") if isinstance(report, dict) else type(report).__name__
        print(json.dumps({"error": f"{args.report}: format {got!r}, expected {FORMAT!r}"}))
        return 3
    os.makedirs(args.out, exist_ok=True)
    for name, text in (
        ("report.md", render_markdown(report)),
        ("report.html", render_html(report)),
    ):
        with open(os.path.join(args.out, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def _without_missed(value):
    """A build stat for the report: the object cache's counts without the list of its misses."""
    if isinstance(value, dict) and "missed" in value:
        return {k: v for k, v in value.items() if k != "missed"}
    return value
