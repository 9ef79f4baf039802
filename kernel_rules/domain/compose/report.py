"""The report of a tailored kernel: what it enables and weighs against its trace kernel, how long
it takes to boot, and which applications passed on it.

`build_report` gathers plain data (parsed configs, `sizes.json` of both builds, the composition
stats of `domain.compose.tailor`, the results of `domain.guest.app_check`) into one JSON-able dict;
`render_markdown` turns that dict into `report.md`.
"""

from __future__ import annotations

import statistics
from typing import Dict, List, Mapping, Optional, Sequence

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
    return {"text": text, "data": data, "bss": bss, "bzImage": sizes["bzImage"], **symbols}


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
) -> dict:
    """The report as a dict (see `FORMAT`); every input is already parsed. `minimisation` is the
    `minimise.json` document of a minimised kernel."""
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
        "sizes": {
            "tailored": _sizes(tailored_sizes, tailored_symbols),
            "trace_kernel": _sizes(trace_sizes, trace_symbols),
        },
        "composition": {
            k: compose_stats.get(k)
            for k in ("objective", "requirements", "rounds", "weight", "seconds")
        },
        "build": {
            k: (build_stats or {}).get(k) for k in ("compiled", "objects", "seconds", "distance")
        },
        "boot_seconds_to_init": {
            "median": statistics.median(boots) if boots else None,
            "runs": len(boots),
        },
        "app_results": [
            {k: r.get(k) for k in ("name", "passed", "reason", "boot_seconds", "seconds")}
            for r in app_results
        ],
        "all_apps_passed": all(r.get("passed") for r in app_results),
        "minimisation": _minimisation_summary(minimisation) if minimisation else None,
    }


def _minimisation_summary(m: Mapping) -> dict:
    tries = m["tries"]
    failing = {t["try"]: t for t in tries if not t["passed"]}
    return {
        "mode": m["mode"],
        "complete": m["complete"],
        "cost": m["cost"],
        "removed_groups": [g["name"] for g in m["groups"] if g["removed"]],
        "removed": m["removed"],
        "kept": [
            {
                "item": k["item"],
                "proved_by_try": k["proved_by_try"],
                "failure": (failing[k["proved_by_try"]].get("reason") or "")[-600:]
                if k["proved_by_try"] in failing
                else None,
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
            f"Build: {b['compiled']} of {b['objects']} objects compiled in {b['seconds']} s."
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
    m = report.get("minimisation")
    if m:
        lines += _render_minimisation(m)
    return "\n".join(lines) + "\n"


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
        lines.append(
            f"| `{k['item']}` | {k['proved_by_try'] or '-'} | "
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
