"""Syscall -> Kconfig: the options that gate each x86-64 syscall of one kernel source.

For every native syscall of `arch/x86/entry/syscalls/syscall_64.tbl` (domain.syscalls.table),
the files defining its entry point (`SYSCALL_DEFINEn(<entry>, ...)` in a `.c` file of the tree,
outside other architectures, tools and documentation) give its condition: for each definition,
the Kbuild condition of the object (domain.map.kbuild_conditions) AND the C preprocessor
condition of the line (domain.map.cpp_conditions); several definitions (mm/mmap.c and
mm/nommu.c) are OR-ed. `__ARCH_WANT_*` macros are read from `arch/x86/include/asm/unistd.h`
(defined for x86-64: true; otherwise false) instead of staying unknown. `COND_SYSCALL(<entry>)`
in kernel/sys_ni.c says the syscall may be configured out (a weak stub returning -ENOSYS); a
syscall with a non-trivial condition and no `COND_SYSCALL` is noted.

Format `kernel_rules/syscall-kconfig@1` (keys sorted):

    {"format": ..., "source_sha256": ...,
     "syscalls": {"<name>": {"number", "entry", "definitions": [{"file", "line", "kbuild",
                  "cpp"}], "cond_syscall": bool, "condition": "<formula>",
                  "formula": <JSON formula>, "requires": {"<SYMBOL>": "y"|"m"|"ym"|"n"},
                  "status": "always" | "conditional" | "undefined"}}}

`requires` are the definite facts of the condition (domain.map.conditions.definite_facts): what
must hold for the syscall to be there. `check_kernel(table, config, kernel_entries)` compares
the table with a built kernel: its `.config` and the `__x64_sys_*` symbols of its System.map.

Run as `python3 -m kernel_rules.domain.syscalls.kconfig_table --tarball F --sha256 H --cache DIR
--out DIR` (writes `syscall-kconfig.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Dict, List, Sequence, Tuple

from kernel_rules.domain.build.warm_trees import unpack_source
from kernel_rules.domain.map.conditions import (
    FALSE,
    TRUE,
    And,
    Const,
    Formula,
    Not,
    Or,
    Sym,
    Unknown,
    conj,
    definite_facts,
    disj,
    evaluate,
    neg,
)
from kernel_rules.domain.map.cpp_conditions import line_conditions
from kernel_rules.domain.map.kbuild_conditions import KbuildIndex
from kernel_rules.domain.syscalls import table

FORMAT = "kernel_rules/syscall-kconfig@1"
_DEFINE = re.compile(r"^\s*SYSCALL_DEFINE[0-6]\(\s*(\w+)", re.M)
_COND = re.compile(r"^\s*COND_SYSCALL\(\s*(\w+)\s*\)", re.M)
SKIP_TOP = ("tools", "Documentation", "samples", "scripts", "usr", "include")
UNISTD = "arch/x86/include/asm/unistd.h"


def encode(f: Formula):
    """A formula as JSON: true/false, ["sym", name, state], ["not", f], ["and"|"or", f...],
    ["unknown", text]."""
    if isinstance(f, Const):
        return f.value
    if isinstance(f, Sym):
        return ["sym", f.name, f.state]
    if isinstance(f, Not):
        return ["not", encode(f.arg)]
    if isinstance(f, (And, Or)):
        return ["and" if isinstance(f, And) else "or", *(encode(a) for a in f.args)]
    return ["unknown", f.text]


def decode(j) -> Formula:
    if j is True or j is False:
        return TRUE if j else FALSE
    kind = j[0]
    if kind == "sym":
        return Sym(j[1], j[2])
    if kind == "not":
        return neg(decode(j[1]))
    if kind == "and":
        return conj(*(decode(a) for a in j[1:]))
    if kind == "or":
        return disj(*(decode(a) for a in j[1:]))
    return Unknown(j[1])


ARCH_MACROS = {"__x86_64__": True, "__KERNEL__": True, "__i386__": False, "__alpha__": False}
ARCH_MACROS.update(
    (m, False)
    for m in "__ia64__ __sparc__ __mips__ __powerpc__ __s390__ __arm__ __aarch64__ __hppa__ "
    "__m68k__ __sh__ __riscv __xtensa__ __arc__ __csky__ __loongarch__ __nios2__".split()
)
_MACRO = re.compile(r"(?:defined\s*\(?\s*)?(\w+)\s*\)?")


def _macro_value(name: str, wants: Dict[str, bool]) -> Formula:
    """What a non-CONFIG macro means on x86-64: __ARCH_WANT_* from asm/unistd.h, the
    architecture macros, and include guards (`_..._H`: not defined)."""
    if name.startswith("__ARCH_WANT_"):
        return TRUE if wants.get(name, False) else FALSE
    if name in ARCH_MACROS:
        return TRUE if ARCH_MACROS[name] else FALSE
    if name.endswith("_H") and name.startswith("_"):
        return FALSE
    return Unknown(name)


def resolve_macros(f: Formula, wants: Dict[str, bool]) -> Formula:
    """`f` with the Unknowns that are x86-64 macros (`_macro_value`) decided."""

    def by(u: Unknown) -> Formula:
        m = _MACRO.fullmatch(u.text)
        if m:
            v = _macro_value(m.group(1), wants)
            return u if isinstance(v, Unknown) else v
        return u

    return _replace_unknowns(f, by)


def arch_wants(srctree: str) -> Dict[str, bool]:
    """__ARCH_WANT_* macro -> defined for x86-64 (CONFIG_X86_32 off)."""
    path = os.path.join(srctree, UNISTD)
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    lines = line_conditions(text)
    out: Dict[str, bool] = {}
    for i, line in enumerate(text.splitlines(), start=1):
        m = re.match(r"^\s*#\s*define\s+(__ARCH_WANT_\w+)", line)
        if m:
            f = resolve_macros(lines.condition(i), {})
            v = evaluate(f, {"X86_32": "n", "X86_64": "y"})
            out[m.group(1)] = out.get(m.group(1), False) or v is True
    return out


def _replace_unknowns(f: Formula, by) -> Formula:
    if isinstance(f, Unknown):
        return by(f)
    if isinstance(f, Not):
        return neg(_replace_unknowns(f.arg, by))
    if isinstance(f, And):
        return conj(*(_replace_unknowns(a, by) for a in f.args))
    if isinstance(f, Or):
        return disj(*(_replace_unknowns(a, by) for a in f.args))
    return f


def _source_files(srctree: str):
    for top in sorted(os.listdir(srctree)):
        if top in SKIP_TOP or not os.path.isdir(os.path.join(srctree, top)):
            continue
        for dirpath, dirs, names in os.walk(os.path.join(srctree, top)):
            rel_dir = os.path.relpath(dirpath, srctree)
            if rel_dir == "arch":
                dirs[:] = [d for d in dirs if d == "x86"]
            elif rel_dir == "arch/x86":
                dirs[:] = [d for d in dirs if d != "um"]
            dirs.sort()
            for name in sorted(names):
                if name.endswith(".c"):
                    yield os.path.join(rel_dir, name)


def definitions(srctree: str) -> Dict[str, List[Tuple[str, int]]]:
    """entry name -> [(file, line)] of its SYSCALL_DEFINEn."""
    out: Dict[str, List[Tuple[str, int]]] = {}
    for rel in _source_files(srctree):
        with open(os.path.join(srctree, rel), "rb") as f:
            data = f.read()
        if b"SYSCALL_DEFINE" not in data:
            continue
        text = data.decode(errors="replace")
        for m in _DEFINE.finditer(text):
            line = text.count("\n", 0, m.start(1)) + 1
            out.setdefault(m.group(1), []).append((rel, line))
    return out


def object_condition(srctree: str, index: KbuildIndex, rel: str) -> Formula:
    """The Kbuild condition of `rel`; for a file no Makefile builds, that of the `.c` files in
    its directory that `#include` it (the scheduler's build_utility.c), AND the include line's
    condition."""
    formula = index.condition(rel).formula
    if not (isinstance(formula, Unknown) and "no Makefile rule builds" in formula.text):
        return formula
    d, base = os.path.split(rel)
    pattern = re.compile(r'^\s*#\s*include\s+"' + re.escape(base) + '"', re.M)
    hits = []
    for name in sorted(os.listdir(os.path.join(srctree, d))):
        if not name.endswith(".c") or name == base:
            continue
        with open(os.path.join(srctree, d, name), errors="replace") as f:
            text = f.read()
        m = pattern.search(text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
            includer = os.path.join(d, name)
            hits.append(
                conj(index.condition(includer).formula, line_conditions(text).condition(line))
            )
    return disj(*hits) if hits else formula


def cond_syscalls(srctree: str) -> set:
    with open(os.path.join(srctree, "kernel/sys_ni.c"), errors="replace") as f:
        return set(_COND.findall(f.read()))


def build_table(srctree: str, source_sha256: str = "") -> dict:
    with open(os.path.join(srctree, table.TBL_PATH)) as f:
        syscalls = table.parse_tbl(f.read())
    defs = definitions(srctree)
    conds = cond_syscalls(srctree)
    wants = arch_wants(srctree)
    index = KbuildIndex(srctree, "x86")
    parsed: Dict[str, object] = {}
    out: Dict[str, dict] = {}
    for sc in syscalls:
        found = []
        formulas = []
        for rel, line in defs.get(sc.entry, ()):
            if rel not in parsed:
                with open(os.path.join(srctree, rel), errors="replace") as f:
                    parsed[rel] = line_conditions(f.read())
            kbuild = resolve_macros(object_condition(srctree, index, rel), wants)
            cpp = resolve_macros(parsed[rel].condition(line), wants)
            found.append({"file": rel, "line": line, "kbuild": str(kbuild), "cpp": str(cpp)})
            formulas.append(conj(kbuild, cpp))
        condition = disj(*formulas) if formulas else FALSE
        requires = {s: v for s, v in sorted(definite_facts(condition))} if formulas else {}
        status = "undefined" if not formulas else ("always" if condition == TRUE else "conditional")
        out[sc.name] = {
            "number": sc.number,
            "entry": "sys_" + sc.entry,
            "definitions": found,
            "cond_syscall": sc.entry in conds,
            "condition": str(condition),
            "formula": encode(condition),
            "requires": requires,
            "status": status,
        }
    return {"format": FORMAT, "source_sha256": source_sha256, "syscalls": out}


def check_kernel(doc: dict, config: Dict[str, str], entries: Dict[str, str]) -> dict:
    """The table against one kernel: `config` its .config values, `entries` its
    table.kernel_entries. Disagreements: the condition holds but the kernel has no implemented
    `__x64_sys_<entry>` ("missing"), or it fails and the kernel has one ("unexpected");
    conditions an Unknown decides are counted as undecided."""
    agree = 0
    undecided: List[str] = []
    missing: List[dict] = []
    unexpected: List[dict] = []
    for name, row in sorted(doc["syscalls"].items(), key=lambda kv: kv[1]["number"]):
        predicted = evaluate(decode(row["formula"]), config)
        entry = row["entry"][len("sys_") :]
        present = entries.get(entry) == "implemented"
        item = {"name": name, "number": row["number"], "condition": row["condition"]}
        if predicted is None:
            undecided.append(name)
        elif predicted and not present:
            missing.append({**item, "kernel": entries.get(entry, "absent")})
        elif not predicted and present:
            unexpected.append(item)
        else:
            agree += 1
    return {
        "agree": agree,
        "undecided": undecided,
        "missing_in_kernel": missing,
        "unexpected_in_kernel": unexpected,
    }


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="kconfig_table", description=__doc__.splitlines()[0])
    p.add_argument("--tarball", required=True)
    p.add_argument("--sha256", required=True)
    p.add_argument("--cache", required=True, help="cache root holding the unpacked sources")
    p.add_argument("--srctree", help="an unpacked source tree (instead of --tarball)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.srctree:
        srctree = args.srctree
    else:
        srctree = unpack_source(args.cache, args.tarball, args.sha256)
    doc = build_table(srctree, args.sha256)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "syscall-kconfig.json"), "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    counts: Dict[str, int] = {}
    for row in doc["syscalls"].values():
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    print(f"kernel_rules: syscall-kconfig: {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
