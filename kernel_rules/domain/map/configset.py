"""Config sets: what one trace says about the kernel configuration, as a small, deterministic,
content-addressed JSON document.

Format `kernel_rules/config-set@2` (keys sorted, two-space indent, newline at the end):

    {
      "format": "kernel_rules/config-set@2",
      "kind": "baseline" | "app",
      "target": "<address of the kernel_baseline or app_profile>",
      "traced_on": {"source_sha256", "trace_config_sha256", "machine_sha256", "workload_sha256"},
      "requirements": {                   # definite facts: must hold in every kernel built for this
        "<SYMBOL>": {"value": "y" | "m" | "ym" | "n" | "not-y",
                     "lines": <executed lines implying it>,
                     "module_lines": <of those, executed in loadable modules; absent if 0>,
                     "evidence": ["<file>:<line>", ...up to 3, sorted],
                     "phases": ["boot", "init"]}  # when it was executed, sorted (see below)
      },
      "conditions": [                     # executed code under a condition that is not a plain
        {"formula": "<A || B>", "lines", "evidence", "phases"}  # conjunction (kept for the
      ],                                  # composer; not requirements)
      "unresolved": {"lines": <n>, "notes": ["...", ...up to 20]},
      "stats": {"addresses", "mapped_addresses", "unmapped_addresses", "lines", "files",
                "pre_kernel_instructions", "contradictions": [...],
                "phase_addresses": {"<phase>": <traced addresses seen in it>, ...},
                "modules": {"loaded": [...], "traced": {"<module>": {"addresses", "mapped"}},
                            "without_debug_file": [...]}}   # only when modules were loaded
    }

Values: `y` built in, `m` module, `ym` enabled either way, `n` off, `not-y` anything but built in
(`#ifndef CONFIG_X` around executed code, X tristate). A requirement comes from the Kbuild
condition of the object holding the executed code AND the C preprocessor conditions around the
line, in every frame of its inline chain. `contradictions` lists facts that do not hold in the
trace kernel's own configuration: a mapping error (the check should always find none).

Phases (domain.trace.log): `init`, code executed during kernel initialisation, before the baseline's
first user-space program; `boot`, code executed in the baseline's user-space boot (complete: code
that ran during initialisation and runs again is seen again); `app`, code executed in an app's
window (every entry of an app set has `["app"]`). The phases of a requirement or condition are
those of all the executed addresses behind its evidence lines; a requirement seen only in `init`
comes from code that ran during initialisation and not again in the traced user-space boot. Format 1 was the same without `phases`
and `phase_addresses`; readers (domain.compose.tailor) accept both.

The set is named by the sha256 of its bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Set, Tuple

from kernel_rules.domain.map.addr2src import Location
from kernel_rules.domain.map.conditions import Formula, conj, TRUE, Unknown, And, Sym, Not

FORMAT = "kernel_rules/config-set@2"
APP_PHASES = ("app",)
EVIDENCE_SAMPLES = 3


@dataclass(frozen=True)
class TracedOn:
    source_sha256: str
    trace_config_sha256: str
    machine_sha256: str
    workload_sha256: str = ""


@dataclass
class _Acc:
    lines: Set[str] = field(default_factory=set)
    module_lines: Set[str] = field(default_factory=set)  # lines executed in module code
    phases: Set[str] = field(default_factory=set)


def _holds(symbol: str, value: str, config: Mapping[str, str]) -> bool:
    v = config.get(symbol, "n")
    return {
        "y": v == "y",
        "m": v == "m",
        "ym": v in ("y", "m"),
        "n": v not in ("y", "m"),
        "not-y": v != "y",
    }[value]


def build_config_set(
    kind: str,
    target: str,
    traced_on: TracedOn,
    locations: Mapping[int, Location],
    addresses: int,
    line_condition: Callable[[str, int], Formula],
    object_condition: Callable[[str], Tuple[Formula, Optional[str]]],
    facts_of: Callable[[Formula], Iterable[Tuple[str, str]]],
    trace_config: Mapping[str, str],
    pre_kernel_instructions: int = 0,
    module_stats: Optional[dict] = None,
    module_addresses: Set[int] = frozenset(),
    address_phases: Optional[Mapping[int, Iterable[str]]] = None,
) -> dict:
    """The config-set document for one trace.

    `line_condition(file, line)`: C preprocessor condition of a source line.
    `object_condition(file)`: Kbuild condition of the object a .c/.S file is compiled into, and
    a note when it could not be resolved. `facts_of(formula)`: its definite facts.
    `address_phases`: every traced address -> the phases it was seen in; an app's may be left
    out (all `app`), a baseline's may not.
    """
    if address_phases is None:
        if kind != "app":
            raise ValueError(f"{target}: the phases of a {kind} trace's addresses are needed")
        address_phases = {a: APP_PHASES for a in locations}
    phases_at: Dict[int, FrozenSet[str]] = {a: frozenset(p) for a, p in address_phases.items()}
    facts: Dict[Tuple[str, str], _Acc] = defaultdict(_Acc)
    formulas: Dict[str, _Acc] = defaultdict(_Acc)
    notes: Set[str] = set()
    unresolved_lines: Set[str] = set()
    all_lines: Set[str] = set()
    files: Set[str] = set()
    mapped = 0
    kbuild_cache: Dict[str, Tuple[Formula, Optional[str]]] = {}
    # (owning .c file, frame file, frame line) -> the phases it was executed in
    triples: Dict[Tuple[str, str, int], Set[str]] = defaultdict(set)
    in_modules: Set[Tuple[str, str, int]] = set()  # ... of those, executed in module code
    for loc in locations.values():
        if not loc.frames:
            continue
        mapped += 1
        for frame in loc.frames:
            triple = (loc.outermost.file, frame.file, frame.line)
            triples[triple] |= phases_at.get(loc.address, frozenset())
            if loc.address in module_addresses:
                in_modules.add(triple)
    for owner, path, line in sorted(triples):
        phases = triples[(owner, path, line)]
        if owner not in kbuild_cache:
            kbuild_cache[owner] = object_condition(owner)
        kbuild, note = kbuild_cache[owner]
        where = f"{path}:{line}"
        all_lines.add(where)
        files.add(path)
        if note:
            notes.add(note)
            unresolved_lines.add(where)
        cond = conj(kbuild, line_condition(path, line))
        for fact in facts_of(cond):
            facts[fact].lines.add(where)
            facts[fact].phases |= phases
            if (owner, path, line) in in_modules:
                facts[fact].module_lines.add(where)
        residue = _residue(cond)
        if residue is not None:
            formulas[str(residue)].lines.add(where)
            formulas[str(residue)].phases |= phases
    requirements = {}
    contradictions = []
    for (symbol, value), acc in sorted(facts.items()):
        if not _holds(symbol, value, trace_config):
            contradictions.append(f"{symbol}={value} ({min(acc.lines)})")
            continue
        phases = set(acc.phases)
        if symbol in requirements:  # two facts on one symbol: keep the stronger one
            value = _stronger(requirements[symbol]["value"], value)
            phases |= set(requirements[symbol]["phases"])
        requirements[symbol] = {
            "value": value,
            "lines": len(acc.lines),
            "evidence": _samples(acc.lines),
            "phases": sorted(phases),
            **({"module_lines": len(acc.module_lines)} if acc.module_lines else {}),
        }
    return {
        "format": FORMAT,
        "kind": kind,
        "target": target,
        "traced_on": traced_on.__dict__,
        "requirements": requirements,
        "conditions": [
            {
                "formula": f,
                "lines": len(acc.lines),
                "evidence": _samples(acc.lines),
                "phases": sorted(acc.phases),
            }
            for f, acc in sorted(formulas.items())
        ],
        "unresolved": {"lines": len(unresolved_lines), "notes": sorted(notes)[:20]},
        "stats": {
            "addresses": addresses,
            "mapped_addresses": mapped,
            "unmapped_addresses": addresses - mapped,
            "lines": len(all_lines),
            "files": len(files),
            "pre_kernel_instructions": pre_kernel_instructions,
            "contradictions": contradictions,
            "phase_addresses": _phase_counts(phases_at.values()),
            **({"modules": module_stats} if module_stats and module_stats.get("loaded") else {}),
        },
    }


def _phase_counts(phase_sets: Iterable[FrozenSet[str]]) -> Dict[str, int]:
    counts: Dict[str, int] = defaultdict(int)
    for phases in phase_sets:
        for p in phases:
            counts[p] += 1
    return dict(sorted(counts.items()))


def phase_groups(items: Iterable[dict]) -> Dict[str, int]:
    """How many of `items` (requirements or conditions) have each combination of phases, keyed
    `boot+init`; a format 1 set's items, without phases, count under `?`."""
    counts: Dict[str, int] = defaultdict(int)
    for item in items:
        counts["+".join(item.get("phases", ["?"]))] += 1
    return dict(sorted(counts.items()))


def _samples(lines: Set[str]) -> List[str]:
    """Deterministic evidence: lines in .c/.S files first (they say more than a header's)."""
    return sorted(lines, key=lambda w: (not w.split(":")[0].endswith((".c", ".S")), w))[
        :EVIDENCE_SAMPLES
    ]


def _stronger(a: str, b: str) -> str:
    pair = {a, b}
    if pair <= {"y", "ym"}:
        return "y"
    if pair <= {"m", "ym"}:
        return "m"
    if pair <= {"n", "not-y"}:
        return "n"
    if pair == {"ym", "not-y"}:
        return "m"
    return a  # a genuine conflict: the first wins; the composer sees the evidence of both


def _residue(cond: Formula) -> Optional[Formula]:
    """The part of a condition that is not a plain symbol fact or Unknown (e.g. a disjunction)."""
    parts = cond.args if isinstance(cond, And) else (cond,)
    rest = [
        p
        for p in parts
        if not isinstance(p, (Sym, Unknown))
        and not (isinstance(p, Not) and isinstance(p.arg, Sym))
        and p != TRUE
    ]
    if not rest:
        return None
    return conj(*rest)


def dumps(doc: dict) -> str:
    """Canonical text of a config set: the same document always gives the same bytes."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def name_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def summary(doc: dict, digest: str) -> str:
    """A readable Markdown summary of a config set."""
    s = doc["stats"]
    reqs = doc["requirements"]
    lines = [
        f"# Config set {digest[:16]} ({doc['kind']} {doc['target']})",
        "",
        f"- addresses traced: {s['addresses']} ({s['mapped_addresses']} mapped to source, "
        f"{s['unmapped_addresses']} unmapped); firmware/setup/decompressor instructions not "
        f"mapped: {s['pre_kernel_instructions']}",
        f"- source lines: {s['lines']} in {s['files']} files",
        f"- requirements: {len(reqs)} "
        f"({sum(1 for r in reqs.values() if r['value'] in ('y', 'm', 'ym'))} on, "
        f"{sum(1 for r in reqs.values() if r['value'] in ('n', 'not-y'))} off)",
        f"- other conditions: {len(doc['conditions'])}; lines with an unresolved Kbuild "
        f"condition: {doc['unresolved']['lines']}",
        f"- contradictions with the trace kernel's config: {len(s['contradictions'])}",
        "- addresses by phase: " + _counts(s.get("phase_addresses", {})),
        "- requirements by phases: " + _counts(phase_groups(reqs.values())),
    ]
    if doc["kind"] == "baseline":
        lines.append(
            f"- init-only requirements (executed during kernel initialisation, never "
            f"in the user-space boot): "
            f"{sum(1 for r in reqs.values() if r.get('phases') == ['init'])}"
        )
    mods = s.get("modules")
    if mods:
        traced = mods["traced"]
        lines.append(
            f"- modules loaded: {len(mods['loaded'])}; traced in {len(traced)} "
            f"({sum(t['addresses'] for t in traced.values())} addresses, "
            f"{sum(t['mapped'] for t in traced.values())} mapped through their debug files)"
            + (
                f"; no debug file: {', '.join(mods['without_debug_file'])}"
                if mods["without_debug_file"]
                else ""
            )
        )
    lines += [
        "",
        "| symbol | value | phases | lines | evidence |",
        "|---|---|---|---|---|",
    ]
    for sym, r in sorted(reqs.items()):
        lines.append(
            f"| {sym} | {r['value']} | {', '.join(r.get('phases', []))} | {r['lines']} "
            f"| {r['evidence'][0]} |"
        )
    return "\n".join(lines) + "\n"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in counts.items()) or "none"


def evaluate_against(doc: dict, config: Mapping[str, str]) -> List[str]:
    """Requirements of `doc` that `config` does not satisfy (empty: all hold)."""
    return [
        f"{s}={r['value']}"
        for s, r in sorted(doc["requirements"].items())
        if not _holds(s, r["value"], config)
    ]
