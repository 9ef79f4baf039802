"""Compose a tailored kernel's `.config`: config sets + force/forbid -> MaxSAT -> olddefconfig.

This is the program of the composition process (`python3 -m kernel_rules.domain.compose.tailor ...`):

1. Requirements: every requirement of every config set (the baseline's and each app's), labelled
   with its target and a sample of its file:line evidence, and every condition of a set that is a
   formula over CONFIG symbols only (`LEGACY_PTYS || UNIX98_PTYS`: executed code that needs one
   of them); then the `force` values and `forbid`
   symbols of the tailored_kernel target, labelled with the BUILD field, and what the product's
   guests need by construction (GUEST_FORMAT: initramfs, gzip, ELF, scripts), always hard. Each config set must have
   been traced on this source tarball and this trace kernel configuration.
2. The model: the kernel's real Kconfig (kconfiglib) as CNF (`kconfig_model`), restricted to the
   trace kernel's configuration (its universe): the solver may only turn off what the trace
   kernel has on, except that any member of a choice may be picked (so that e.g. "no debug
   info" is reachable from a trace kernel with DWARF); with `--soft`, what `make tinyconfig` has
   on may be on too (the floor a minimisation may reach: a distribution's SMP kernel has
   TINY_RCU off, and a universe without it would keep SMP on). int/hex/string values are the
   trace kernel's, unless `force` sets them. Picking another choice member than the trace
   kernel's costs OTHER_CHOICE_COST, so it happens only when a requirement needs it (or when its
   `pick:` soft item is left out, see below).
3. MaxSAT (`compose`): every requirement holds; the objective `size` gives each symbol the
   compiled size of the objects Kbuild builds only with it (from the trace kernel's `sizes.json`,
   split evenly when an object needs several symbols; at least 1), `options` counts each enabled
   option as 1. Unsatisfiable requirements: exit 3 with a minimal conflict, each member named by
   its source.
4. The kernel's own `make olddefconfig` has the last word. Its output is checked: every required
   value must have survived. If one did not, the assignment `conf` disagreed with becomes a
   blocking clause and the solver runs again (at most MAX_ROUNDS rounds).

Soft requirements (`--soft baseline|traced`, for verified minimisation, see
`domain.compose.minimise`): traced requirements that a boot and the workloads may show to be
unneeded. `baseline`: those only the baseline's trace has (no app's set, no `force`) and, when its
set records phases, saw only during kernel initialisation; `traced`: every traced requirement
that is not a `force`. Requirements that an option be off are soft too (items `SYMBOL=n`, one
group): code that ran because an option was off does not need it off, and a hard `X86_MPPARSE=n`
keeps ACPI on. In both modes the trace kernel's choice picks that differ from `make tinyconfig`'s
are soft (items `pick:SYMBOL`, one group; not the debug-info choice, which `debug_info` decides):
a pick is a distribution's policy (`-O2`, `NO_HZ_FULL`, `PREEMPT_VOLUNTARY`, SLUB), not something
a trace shows is needed; left out, tinyconfig's pick is the one that costs nothing extra. They
are written to `soft.json`, the others grouped by the Kconfig file of their symbol.
`--drop-file` names a JSON list of soft items whose requirements are left out of this
composition: the solver then keeps them only where something else needs them.

Outputs in --out: `.config` (the olddefconfig output), `requirements.json` (the composed
requirement set: every symbol, its value and all its sources), `compose.json` (counts and
timings, including the Cozart-style closure of the same requirements for comparison) and, with
`--soft`, `soft.json`.

Exit codes: 0 success; 3 bad input or unsatisfiable (JSON `{"error": ...}` on stdout);
anything else: a failure of Kbuild or of this program (details on stderr).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from kernel_rules.domain.compose.solver import (
    FORMULA,
    Requirement,
    Unsatisfiable,
    close_over_dependencies,
    compose,
    enabled,
    formula_holds,
    incompatible_with,
    parse_formula,
    render_config,
)
from kernel_rules.domain.kconfig.config_check import Violation, explain, find_violations
from kernel_rules.domain.kconfig.config_policy import (
    PolicyError,
    check_final,
    forbid_symbol,
    force_value,
)
from kernel_rules.domain.kconfig.fragments import FragmentError, Request, parse_config
from kernel_rules.domain.compose.minimise import (
    groups_document,
    soft_groups,
    unused_syscall_gates,
)
from kernel_rules.domain.compose.static_syscalls import (
    SCOPES as STATIC_SCOPES,
    StaticSyscallsError,
    static_requirements,
)
from kernel_rules.domain.build.warm_trees import TreePool, log, unpack_source

FORMAT = "kernel_rules/requirements@1"
MAX_ROUNDS = 5
OTHER_CHOICE_COST = 10_000_000  # picking a choice member the trace kernel did not pick
OBJECTIVES = ("size", "options")
SOFT = ("baseline", "traced")
# The soft groups of options an app saw that gate only syscalls no app makes: tried first.
UNUSED_SYSCALLS = "apps, gated syscalls unused"
CHOICE_ITEM = "pick:"  # soft item: keep the trace kernel's pick of a choice
OFF_ITEM = "=n"  # soft item SYMBOL=n: a traced requirement that SYMBOL be off
OFF_GROUP = "traced requirements that an option be off"
CHOICE_GROUP = "choices (the trace kernel's picks that differ from tinyconfig's)"


class InputError(Exception):
    """A config set, force or forbid value that cannot be used; the message names it."""


def holds(value: str, got: str) -> bool:
    """Whether a configured value `got` (y/m/n/absent as n) meets a requirement `value`."""
    return {
        "y": got == "y",
        "m": got == "m",
        "ym": got in ("y", "m"),
        "n": got in ("n", ""),
        "not-y": got != "y",
    }[value]


def set_requirements(
    label: str, doc: dict, sha256: str, trace_config_sha256: str
) -> List[Requirement]:
    """The requirements of one config set document, each with its target and first evidence."""
    if doc.get("format") not in ("kernel_rules/config-set@1", "kernel_rules/config-set@2"):
        raise InputError(
            f"{label}: its config-set.json has format {doc.get('format')!r}, not "
            "kernel_rules/config-set@1 or kernel_rules/config-set@2"
        )
    on = doc.get("traced_on", {})
    if on.get("source_sha256") != sha256:
        raise InputError(
            f"{label}: traced on source {on.get('source_sha256')}, but the kernel "
            f"is built from {sha256}"
        )
    if on.get("trace_config_sha256") != trace_config_sha256:
        raise InputError(
            f"{label}: traced on another trace kernel configuration "
            f"({on.get('trace_config_sha256')}, expected {trace_config_sha256})"
        )
    out = []
    for symbol, req in sorted(doc["requirements"].items()):
        evidence = req.get("evidence") or []
        where = f" ({evidence[0]})" if evidence else ""
        out.append(Requirement(symbol, req["value"], f"{doc['kind']} {doc['target']}{where}"))
    for cond in doc.get("conditions", []):
        try:  # conditions on non-CONFIG macros (`?(...)`) say nothing the solver can use
            parse_formula(cond["formula"])
        except ValueError:
            continue
        evidence = cond.get("evidence") or []
        where = f" ({evidence[0]})" if evidence else ""
        out.append(Requirement(cond["formula"], FORMULA, f"{doc['kind']} {doc['target']}{where}"))
    return out


def field_requirements(
    target: str,
    force: Sequence[str],
    forbid: Sequence[str],
    kconf,
    values: Dict[str, str],
    forced: Optional[Dict[str, Request]] = None,
) -> List[Requirement]:
    """`force` lines (`CONFIG_X=y`, `X=m`, `# CONFIG_X is not set`, `CONFIG_N=4`) and `forbid`
    symbols as requirements; int/hex/string values of `force` go into `values` instead, and into
    `forced` (symbol -> Request labelled with the field), so that they can be checked after
    olddefconfig. Values are parsed as BUILD field validation does (`config_policy`)."""
    import kconfiglib as K

    out = []
    for i, line in enumerate(force):
        origin = f"{target} field `force`[{i}]"
        try:
            symbol, value = force_value(line, origin)
        except PolicyError as e:
            raise InputError(str(e)) from None
        sym = kconf.syms.get(symbol)
        if sym is None or not sym.nodes:
            raise InputError(f"{origin}: CONFIG_{symbol} is not a Kconfig symbol of this kernel")
        if sym.orig_type in (K.BOOL, K.TRISTATE):
            if value not in ("y", "m", "n") or (value == "m" and sym.orig_type is K.BOOL):
                raise InputError(
                    f"{origin}: CONFIG_{symbol} is a "
                    f"{K.TYPE_TO_STR[sym.orig_type]}; {value!r} is not a value of it"
                )
            out.append(Requirement(symbol, value, origin))
        else:
            values[symbol] = value
            if forced is not None:
                forced[symbol] = Request(symbol, value, origin)
    for i, name in enumerate(forbid):
        origin = f"{target} field `forbid`[{i}]"
        try:
            symbol = forbid_symbol(name, origin)
        except PolicyError as e:
            raise InputError(str(e)) from None
        sym = kconf.syms.get(symbol)
        if sym is None or not sym.nodes:
            raise InputError(f"{origin}: CONFIG_{symbol} is not a Kconfig symbol of this kernel")
        if sym.orig_type not in (K.BOOL, K.TRISTATE):
            raise InputError(f"{origin}: CONFIG_{symbol} is not a bool or tristate option")
        out.append(Requirement(symbol, "n", origin))
    return out


def dropped_forced_values(forced: Mapping[str, Request], final_text: str, kconf) -> List[Violation]:
    """The int/hex/string `force` values that `make olddefconfig` did not keep in `final_text`,
    each with the reason from `kconf` (e.g. the symbol's range). Loads `final_text` into `kconf`
    (written to `final.config` in the working directory) only when one was dropped."""
    dropped = find_violations(forced, parse_config(final_text))
    if not dropped:
        return []
    path = os.path.join(os.getcwd(), "final.config")
    with open(path, "w") as f:
        f.write(final_text)
    kconf.load_config(path)
    return explain(dropped, kconf)


NO_MODULES = "tailored kernels have no loadable modules"
# What every guest of the product needs by construction (domain.guest): a gzip'd newc cpio
# initramfs, a busybox ELF, a `#!/bin/sh` /init. Hard requirements of every tailored kernel, so
# a minimisation never spends tries finding them out (a boot runs the gzip decompressor only
# during kernel initialisation, which would make it soft).
GUEST_FORMAT = {
    "BLK_DEV_INITRD": "the guest image is an initramfs",
    "RD_GZIP": "the guest initramfs is gzip-compressed",
    "BINFMT_ELF": "the guest's programs are ELF (busybox)",
    "BINFMT_SCRIPT": "the guest's /init is a #! script",
}


def guest_format_requirements(kconf) -> List[Requirement]:
    """GUEST_FORMAT as requirements (those the kernel's Kconfig defines), each labelled with
    why the product's guests need it."""
    return [
        Requirement(name, "y", f"kernel_rules guest format: {why}")
        for name, why in GUEST_FORMAT.items()
        if name in kconf.syms and kconf.syms[name].nodes
    ]


def without_modules(
    reqs: Sequence[Requirement], kconf, trace_config: Mapping[str, str]
) -> Tuple[List[Requirement], List[dict]]:
    """Requirements for a kernel without loadable module support, traced on one with modules.

    Code a module ran must be built in: `m` becomes `ym` (y, with MODULES off). Dropped, each
    with the reason: requirements on the module loader and on options that depend on MODULES
    (they ran because modules were loaded), and `not-y` on an option the trace kernel had as a
    module (that code ran only because the option was not built in). Returns (requirements, [{"requirement", "why"}] of what was changed or dropped)."""
    import kconfiglib as K

    modules = kconf.syms.get("MODULES")
    out: List[Requirement] = []
    relaxed: List[dict] = []
    for r in reqs:
        sym = kconf.syms.get(r.symbol) if r.value != FORMULA else None
        if (
            sym is not None
            and modules is not None
            and (sym is modules or modules in K.expr_items(sym.direct_dep))
        ):
            relaxed.append({"requirement": str(r), "why": "module support: " + NO_MODULES})
        elif r.value == "m":
            out.append(Requirement(r.symbol, "ym", r.source))
            relaxed.append({"requirement": str(r), "why": "built in: " + NO_MODULES})
        elif r.value == "not-y" and trace_config.get(r.symbol) == "m":
            relaxed.append(
                {
                    "requirement": str(r),
                    "why": f"ran because CONFIG_{r.symbol} was "
                    "a module in the trace kernel; built in here",
                }
            )
        else:
            out.append(r)
    return out, relaxed


def drop_incompatible(
    model, reqs: Sequence[Requirement], policies: Sequence[Requirement]
) -> Tuple[List[Requirement], List[dict]]:
    """The traced requirements that can hold together with each policy requirement (no module
    support, no debug info unless asked), and [{"requirement", "why"}] for the others: e.g. an
    option that needs KPROBES, which depends on MODULES, or BTF, which needs DWARF."""
    kept = list(reqs)
    relaxed: List[dict] = []
    for policy in policies:
        bad = set(map(id, incompatible_with(model, policy, kept)))
        relaxed += [
            {"requirement": str(r), "why": f"cannot hold with {policy} ({policy.source})"}
            for r in kept
            if id(r) in bad
        ]
        kept = [r for r in kept if id(r) not in bad]
    return kept, relaxed


def universe_of(
    kconf, trace_config: Mapping[str, str], wanted: Sequence[str] = ()
) -> Dict[str, str]:
    """What the tailored configuration may turn on: the trace kernel's y/m symbols, plus every
    member of every choice (a choice must pick one member, and the trace kernel's pick, e.g.
    DWARF5 debug info, is often not the one a small kernel wants), plus the `wanted` symbols a
    BUILD field asks to be on (`force`, `embed_config`: IKCONFIG, which Debian's kernel lacks)."""
    universe = dict(trace_config)
    for name in wanted:
        if universe.get(name, "n") == "n":
            universe[name] = "y"
    for choice in kconf.unique_choices:
        for member in choice.syms:
            universe.setdefault(member.name, "y")
            if universe[member.name] == "n":
                universe[member.name] = "y"
    return universe


def size_weights(srctree: str, sizes: Mapping[str, int], is_option) -> Dict[str, int]:
    """symbol -> 1 + (bytes of the objects built only with it) // 64, from Kbuild conditions."""
    from kernel_rules.domain.map.conditions import definite_facts
    from kernel_rules.domain.map.kbuild_conditions import KbuildIndex

    index = KbuildIndex(srctree, "x86")
    share: Dict[str, float] = defaultdict(float)
    for path, size in sorted(sizes.items()):
        symbols = sorted(
            s for s, v in definite_facts(index.condition(path).formula) if v != "n" and is_option(s)
        )
        for s in symbols:
            share[s] += size / len(symbols)
    return {s: 1 + int(b) // 64 for s, b in share.items()}


def item_phases(doc: dict) -> Dict[str, Tuple[str, ...]]:
    """{symbol or condition formula: phases} of a config-set@2 document ({} for format 1)."""
    out = {s: tuple(r["phases"]) for s, r in doc.get("requirements", {}).items() if "phases" in r}
    out.update(
        {c["formula"]: tuple(c["phases"]) for c in doc.get("conditions", []) if "phases" in c}
    )
    return out


def soft_items(
    set_reqs: Sequence[Requirement],
    field_reqs: Sequence[Requirement],
    mode: str,
    phases_of: Mapping[str, Tuple[str, ...]] = {},
) -> List[str]:
    """The soft items of `mode` (see the module docstring): symbols (that it be on), `SYMBOL=n`
    (that it be off), or formulas of conditions. `baseline`: what only the baseline's trace has
    and, when its set records phases, saw only during kernel initialisation. `traced`: every
    traced item. Symbols without a prompt are soft too: a hard requirement on one (X86_IO_APIC)
    would keep on whatever it depends on. So are requirements that an option be off: code that
    ran because an option was off (`#ifndef CONFIG_INLINE_READ_UNLOCK`) does not need it off,
    and a hard one can keep others on (X86_MPPARSE=n needs ACPI, INLINE_READ_UNLOCK=n needs
    PREEMPTION)."""
    on = ("y", "m", "ym", FORMULA)
    hard = {r.symbol for r in field_reqs if r.value != "n"}
    hard |= {r.symbol + OFF_ITEM for r in field_reqs if r.value == "n"}
    if mode == "baseline":
        hard |= {
            r.symbol if r.value in on else r.symbol + OFF_ITEM
            for r in set_reqs
            if not r.source.startswith("baseline ") and (r.value in on or r.value == "n")
        }
        not_init = {item for item, phases in phases_of.items() if tuple(phases) != ("init",)}
        hard |= not_init | {s + OFF_ITEM for s in not_init if _is_symbol(s)}
    items = {r.symbol for r in set_reqs if r.value in on}
    items |= {r.symbol + OFF_ITEM for r in set_reqs if r.value == "n"}
    return sorted(items - hard)


def left_out_by(r: Requirement, drop: frozenset) -> bool:
    """Whether leaving out the soft items `drop` leaves out requirement `r`."""
    if r.value == "n":
        return r.symbol + OFF_ITEM in drop
    return r.symbol in drop


def choice_items(kconf, trace_config: Mapping[str, str], tiny: Mapping[str, str]) -> Dict[str, str]:
    """{`pick:SYMBOL`: tinyconfig's pick} for every choice whose one member on in the trace
    kernel (SYMBOL) is not the member `make tinyconfig` picks (`tiny`, the picks of
    domain.kconfig.tinyconfig.tinyconfig); not the debug-info choice (`debug_info` decides)."""
    out: Dict[str, str] = {}
    for choice in kconf.unique_choices:
        names = [m.name for m in choice.syms]
        picked = [n for n in names if trace_config.get(n, "n") == "y"]
        if "DEBUG_INFO_NONE" in names or len(picked) != 1:
            continue
        if tiny.get(picked[0], picked[0]) != picked[0]:
            out[CHOICE_ITEM + picked[0]] = tiny[picked[0]]
    return out


def formula_symbols(text: str) -> List[str]:
    """The symbols a condition formula names, in order."""
    out: List[str] = []

    def walk(tree):
        if tree[0] == "sym":
            out.append(tree[1])
        else:
            for sub in tree[1:]:
                walk(sub)

    walk(parse_formula(text))
    return out


def _is_symbol(item: str) -> bool:
    return item.replace("_", "").isalnum()


def read_drop_file(path: Optional[str]) -> frozenset:
    if not path:
        return frozenset()
    with open(path) as f:
        items = json.load(f)
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InputError(f"{path}: not a JSON list of soft requirement items")
    return frozenset(items)


def olddefconfig(args: argparse.Namespace, src: str, text: str) -> str:
    """The kernel's own `make olddefconfig` run on `text`, in a configuration tree."""
    from kernel_rules.domain.build.kbuild import _write_config, run_make

    pool = TreePool(args.cache, "conf", args.sha256, max_trees=args.max_trees)
    with pool.acquire({}) as tree:
        tree.begin_build()
        _write_config(tree.path, text)
        run_make(src, tree.path, args.arch, args.jobs, ["olddefconfig"])
        with open(os.path.join(tree.path, ".config")) as f:
            final = f.read()
        tree.finish_build(final)
    return final


def blocking_clause(model, solution: Mapping[str, str], symbols: Sequence[str]) -> List[int]:
    """A clause that excludes `solution`'s values of `symbols` together (one must differ)."""
    clause: List[int] = []
    for s in symbols:
        if solution[s] in ("y", "m"):
            clause.append(-model.var(s, solution[s]))
        else:
            clause += [model.var(s, k) for k in ("y", "m")[: 1 + model.symbols[s]]]
    return clause


def composed_set(reqs: Sequence[Requirement], inputs: Mapping[str, str], objective: str) -> dict:
    """The composed requirement set document: per symbol its values and every source."""
    by_symbol: Dict[str, Dict[str, List[str]]] = defaultdict(lambda: defaultdict(list))
    formulas: Dict[str, List[str]] = defaultdict(list)
    for r in reqs:
        if r.value == FORMULA:
            formulas[r.symbol].append(r.source)
        else:
            by_symbol[r.symbol][r.value].append(r.source)
    return {
        "format": FORMAT,
        "objective": objective,
        "inputs": dict(sorted(inputs.items())),
        "requirements": {
            s: {v: sorted(src) for v, src in sorted(vals.items())}
            for s, vals in sorted(by_symbol.items())
        },
        "conditions": {f: sorted(src) for f, src in sorted(formulas.items())},
    }


def run(args: argparse.Namespace) -> Tuple[str, dict, dict]:
    """(final .config text, requirements document, stats); raises InputError/Unsatisfiable."""
    import kconfiglib as K

    from kernel_rules.domain.kconfig.tinyconfig import tinyconfig
    from kernel_rules.domain.kconfig.tree import load_kconfig
    from kernel_rules.domain.kconfig.model import KconfigModel

    times: Dict[str, float] = {}
    t0 = time.monotonic()
    with open(args.trace_config, "rb") as f:
        trace_bytes = f.read()
    try:
        trace_config = parse_config(trace_bytes.decode("utf-8"), "the trace kernel's .config")
    except (FragmentError, UnicodeDecodeError) as e:
        raise InputError(str(e)) from None
    trace_sha = hashlib.sha256(trace_bytes).hexdigest()
    reqs: List[Requirement] = []
    inputs = {}
    phases_of: Dict[str, Tuple[str, ...]] = {}  # baseline items -> phases (config-set@2)
    for spec in args.set:
        label, _, path = spec.partition("=")
        with open(path, "rb") as f:
            data = f.read()
        inputs[label] = hashlib.sha256(data).hexdigest()
        doc = json.loads(data)
        reqs += set_requirements(label, doc, args.sha256, trace_sha)
        if doc.get("kind") == "baseline":
            phases_of.update(item_phases(doc))
    src = unpack_source(args.cache, args.tarball, args.sha256)
    kconf = load_kconfig(src, args.arch, os.environ)
    times["parse Kconfig"] = time.monotonic() - t0
    values = dict(trace_config)
    set_reqs, relaxed = without_modules(reqs, kconf, trace_config)
    forced: Dict[str, Request] = {}
    field_reqs = field_requirements(args.target, args.force, args.forbid, kconf, values, forced)
    policies = []  # traced requirements that cannot hold with these are relaxed, not conflicts
    if args.debug_info:
        field_reqs += [
            Requirement(s, "y", f"{args.target} field `debug_info=True`")
            for s in ("DEBUG_KERNEL", "DEBUG_INFO_DWARF5")
        ]
    else:  # debug info adds no object size, so the size objective alone would not drop it
        policies.append(Requirement("DEBUG_INFO", "n", f"{args.target} field `debug_info=False`"))
    field_reqs += guest_format_requirements(kconf)
    static_reqs, static_summary = _static_syscalls(args, trace_config)
    if args.embed_config:
        field_reqs.append(Requirement("IKCONFIG", "y", f"{args.target} field `embed_config=True`"))
    else:
        policies.append(Requirement("IKCONFIG", "n", f"{args.target} field `embed_config=False`"))
    if "MODULES" in kconf.syms and kconf.syms["MODULES"].nodes:
        policies.append(Requirement("MODULES", "n", NO_MODULES))
    unknown = [
        r
        for r in set_reqs + field_reqs
        if r.value != FORMULA and (r.symbol not in kconf.syms or not kconf.syms[r.symbol].nodes)
    ]
    if unknown:
        raise InputError(
            "requirements name symbols this kernel's Kconfig does not define:\n  "
            + "\n  ".join(map(str, unknown))
        )

    t = time.monotonic()
    wanted = [r.symbol for r in field_reqs if r.value in ("y", "m")]
    # Loads tinyconfig's values into kconf: the model is given its values explicitly.
    tiny_picks, tiny_on = tinyconfig(kconf, src, args.arch)
    if args.soft:  # a minimisation may reach down to tinyconfig (TINY_RCU needs !SMP, ...)
        wanted += sorted(tiny_on)
    model = KconfigModel.build(kconf, universe_of(kconf, trace_config, wanted), values)
    # Only traced requirements are relaxed: a `force` against a policy is a conflict to report.
    set_reqs, dropped = drop_incompatible(model, set_reqs, policies)
    relaxed += dropped
    static_reqs, static_dropped = drop_incompatible(model, static_reqs, policies)
    relaxed += static_dropped
    picks = choice_items(kconf, trace_config, tiny_picks)
    soft = (
        soft_items(set_reqs, field_reqs, args.soft, phases_of) + sorted(picks) if args.soft else []
    )
    drop = read_drop_file(args.drop_file)
    if drop - set(soft):
        raise InputError(
            "--drop-file names items that are not soft requirements: "
            + ", ".join(sorted(drop - set(soft))[:10])
        )
    left_out = [r for r in set_reqs if left_out_by(r, drop)]
    set_reqs = [r for r in set_reqs if not left_out_by(r, drop)]
    reqs = set_reqs + field_reqs + static_reqs + policies
    weights: Dict[str, int] = {}
    if args.objective == "size":
        with open(args.sizes) as f:
            sizes = json.load(f)["objects"]
        weights = size_weights(src, sizes, lambda s: s in model.symbols)
    # Keep the trace kernel's picks (tinyconfig's, where a `pick:` item is left out) unless a
    # requirement needs another.
    preferred = {s for s, v in trace_config.items() if v in ("y", "m")}
    preferred -= {item[len(CHOICE_ITEM) :] for item in drop if item in picks}
    preferred |= {picks[item] for item in drop if item in picks}
    for choice in kconf.unique_choices:
        for member in choice.syms:
            if member.name not in preferred:
                weights[member.name] = weights.get(member.name, 1) + OTHER_CHOICE_COST
    times["build model"] = time.monotonic() - t
    soft_doc = None
    if args.soft:
        seen_by_apps = {r.symbol for r in set_reqs if not r.source.startswith("baseline ")}
        unused_gates = _unused_syscall_gates(args)

        def group_of(item: str) -> str:  # items seen after kernel init are likelier needed
            if item in picks:
                return CHOICE_GROUP
            if item.endswith(OFF_ITEM):
                return OFF_GROUP
            names = [item] if _is_symbol(item) else formula_symbols(item)
            sym = kconf.syms.get(names[0])
            where = sym.nodes[0].filename if sym is not None and sym.nodes else "(no Kconfig)"
            if item in seen_by_apps and set(names) <= unused_gates:
                return f"{where} ({UNUSED_SYSCALLS})"
            if item in seen_by_apps:
                return f"{where} (apps)"
            return f"{where} (boot)" if "boot" in phases_of.get(item, ()) else where

        soft_doc = groups_document(
            soft_groups(
                soft,
                group_of,
                lambda item: (
                    weights.get(item[len(CHOICE_ITEM) :], 1)
                    if item in picks
                    else 1
                    if item.endswith(OFF_ITEM)
                    else sum(
                        weights.get(n, 1)
                        for n in ([item] if _is_symbol(item) else formula_symbols(item))
                    )
                ),
                later=lambda group: (
                    -1
                    if group.endswith(f" ({UNUSED_SYSCALLS})")
                    else 2
                    if group.endswith(" (apps)")
                    else 1
                    if group.endswith(" (boot)")
                    else 0
                ),
            )
        )
        soft_doc["mode"] = args.soft

    static_cost = None
    if static_reqs:  # what static coverage costs: the same problem solved without it
        t = time.monotonic()
        without = compose(model, [r for r in reqs if r not in static_reqs], weights)
        with_it = compose(model, reqs, weights)
        times["solve without static syscalls"] = time.monotonic() - t
        kept = sorted(set(enabled(with_it)) - set(enabled(without)))
        static_cost = {
            "options": len(enabled(with_it)) - len(enabled(without)),
            "options_kept": kept,
            # size_weights' unit is 64 bytes of the trace kernel's objects, plus 1 per option
            "bytes_estimate": sum((weights.get(s, 1) - 1) * 64 for s in kept),
        }

    rounds, disagreements, final = 0, [], ""
    solve_s = conf_s = 0.0
    while True:
        rounds += 1
        t = time.monotonic()
        solution = compose(model, reqs, weights)
        solve_s += time.monotonic() - t
        t = time.monotonic()
        final = olddefconfig(args, src, render_config(solution))
        conf_s += time.monotonic() - t
        got = parse_config(final)
        dropped = dropped_forced_values(forced, final, kconf)
        if dropped:
            raise InputError(
                f"{len(dropped)} `force` value(s) did not survive `make olddefconfig`:\n  "
                + "\n  ".join(v.message() for v in dropped)
            )
        changed = sorted(s for s in model.symbols if solution.get(s, "n") != got.get(s, "n"))
        lost = [
            r for r in reqs if not formula_holds(parse_formula(r.symbol), got) if r.value == FORMULA
        ] + [
            r
            for r in reqs
            if r.value != FORMULA
            and kconf.syms[r.symbol].orig_type in (K.BOOL, K.TRISTATE)
            and not holds(r.value, got.get(r.symbol, "n"))
        ]
        disagreements.append(
            {"round": rounds, "changed_by_olddefconfig": changed, "lost": [str(r) for r in lost]}
        )
        if not lost:
            break
        if rounds >= MAX_ROUNDS or not changed:
            raise InputError(
                f"olddefconfig does not keep these required values after {rounds} rounds:\n  "
                + "\n  ".join(map(str, lost))
            )
        log(
            f"olddefconfig changed {len(changed)} symbols and lost {len(lost)} requirements; "
            "blocking that assignment and solving again"
        )
        model.clauses.append(blocking_clause(model, solution, changed))
    host_paths = check_final(
        parse_config(final),
        forced,
        "the composed .config (a value of the trace kernel's configuration or a Kconfig default)",
    )
    if host_paths:
        raise InputError(
            "the composed configuration names files outside the kernel tree:\n  "
            + "\n  ".join(v.message() for v in host_paths)
        )
    times["solve (MaxSAT)"] = solve_s
    times["olddefconfig"] = conf_s

    closure = close_over_dependencies(
        {r.symbol: r.value for r in reqs if r.value not in ("n", FORMULA)}, kconf
    )
    final_values = parse_config(final)
    stats = {
        "objective": args.objective,
        "requirements": len(reqs),
        "rounds": rounds,
        "disagreements": disagreements,
        "enabled": len(enabled(final_values)),
        "trace_kernel_enabled": len(enabled(trace_config)),
        "closure_enabled": len(closure),
        "weight": sum(weights.get(s, 1) for s in enabled(final_values) if s in model.symbols),
        "seconds": {k: round(v, 2) for k, v in times.items()},
    }
    if args.static_scope != "off":
        stats["static_syscalls"] = {
            "scope": args.static_scope,
            "objective": args.objective,
            "apps": static_summary,
            "requirements": len(static_reqs),
            "cost": static_cost,
        }
    if args.soft:
        stats["soft"] = {
            "mode": args.soft,
            "items": len(soft),
            "left_out": len(drop),
            "left_out_requirements": len(left_out),
            "choice_picks": {item: picks[item] for item in sorted(picks)},
        }
    doc = composed_set(reqs, inputs, args.objective)
    doc["relaxed"] = relaxed
    if drop:
        doc["left_out"] = [str(r) for r in left_out] + [
            f"{item} (tinyconfig's pick {picks[item]} instead)"
            for item in sorted(drop & set(picks))
        ]
    return final, doc, stats, soft_doc


def _unused_syscall_gates(args: argparse.Namespace) -> frozenset:
    """The options gating only syscalls no app's binaries make and no trace saw (from every
    `--static-syscalls` and `--syscall-table`); empty without them."""
    if not args.syscall_table or not args.static_syscalls:
        return frozenset()
    with open(args.syscall_table) as f:
        table = json.load(f)
    used: set = set()
    for spec in args.static_syscalls:
        with open(spec.partition("=")[2]) as f:
            doc = json.load(f)
        used |= set(doc.get("static") or ()) | set(doc.get("traced") or ())
    return unused_syscall_gates(table, used)


def _static_syscalls(
    args: argparse.Namespace, trace_config: Mapping[str, str]
) -> Tuple[List[Requirement], List[dict]]:
    """The hard requirements of static syscall coverage (domain.compose.static_syscalls) for
    every `--static-syscalls LABEL=PATH`, and one summary per app."""
    if args.static_scope == "off":
        return [], []
    reqs: List[Requirement] = []
    summaries = []
    for spec in args.static_syscalls:
        label, _, path = spec.partition("=")
        with open(path) as f:
            doc = json.load(f)
        try:
            found, summary = static_requirements(label, doc, args.static_scope, trace_config)
        except StaticSyscallsError as e:
            raise InputError(str(e)) from None
        reqs += [r for r in found if r not in reqs]
        summaries.append(summary)
    return reqs, summaries


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="tailor", description=__doc__.splitlines()[0])
    p.add_argument("--tarball", required=True)
    p.add_argument("--sha256", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--arch", default="x86_64")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--max-trees", type=int, default=3)
    p.add_argument("--target", required=True, help="the tailored_kernel address, for messages")
    p.add_argument("--trace-config", required=True)
    p.add_argument("--sizes", help="the trace kernel's sizes.json (objective `size`)")
    p.add_argument("--set", action="append", default=[], help="LABEL=PATH of a config set")
    p.add_argument("--force", action="append", default=[])
    p.add_argument("--forbid", action="append", default=[])
    p.add_argument("--objective", choices=OBJECTIVES, default="size")
    p.add_argument("--debug-info", action="store_true", help="require DWARF debug info")
    p.add_argument(
        "--embed-config", action="store_true", help="require IKCONFIG (the .config in the image)"
    )
    p.add_argument(
        "--static-scope",
        choices=STATIC_SCOPES,
        default="off",
        help="keep the options gating the syscalls the apps' binaries can make",
    )
    p.add_argument(
        "--static-syscalls",
        action="append",
        default=[],
        help="LABEL=PATH of an app's syscalls.json (kept with --static-scope; with --soft and "
        "--syscall-table, soft options gating only syscalls no app makes are tried first)",
    )
    p.add_argument("--syscall-table", help="the source's syscall-kconfig.json (with --soft)")
    p.add_argument("--soft", choices=SOFT, help="write soft.json: the soft requirements")
    p.add_argument("--drop-file", help="JSON list of soft items to leave out")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        final, doc, stats, soft_doc = run(args)
    except (InputError, Unsatisfiable) as e:
        report = {"error": str(e)}
        if isinstance(e, Unsatisfiable):
            report["conflict"] = [list(c) for c in e.conflict]
        print(json.dumps(report))
        return 3
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, ".config"), "w") as f:
        f.write(final)
    with open(os.path.join(args.out, "requirements.json"), "w") as f:
        f.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    with open(os.path.join(args.out, "compose.json"), "w") as f:
        f.write(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    if soft_doc is not None:
        with open(os.path.join(args.out, "soft.json"), "w") as f:
            f.write(json.dumps(soft_doc, indent=2, sort_keys=True) + "\n")
    log(
        f"composed {stats['enabled']} enabled options (trace kernel {stats['trace_kernel_enabled']},"
        f" closure {stats['closure_enabled']}) in {stats['rounds']} round(s); "
        + ", ".join(f"{k} {v} s" for k, v in stats["seconds"].items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
