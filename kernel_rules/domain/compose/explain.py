"""Why a kernel has each option, and how two kernels differ.

This is the program of the `kernel-explain` and `kernel-diff` goals
(`python3 -m kernel_rules.domain.compose.explain explain|diff ...`). It reads a kernel's outputs
(its `config`; for a tailored kernel also `requirements.json`, its config sets, `minimise.json`
and the trace kernel's configuration) and the kernel's own Kconfig (kconfiglib, from the pinned
tarball unpacked in the named cache), and writes `explain.json` and `explain.txt` to `--out`.

An explanation of a symbol is its value and the chain of reasons behind it, each with file:line:

- on: a requirement and every source of it (a config set's target, its phases, the traced
  file:line; a `force` line, named by the BUILD file and field); else `select`, `imply` or
  `depends on` links of the kernel's Kconfig from enabled options, walked back to a requirement
  (the shortest chain) or, failing that, to a Kconfig default: an option without a visible
  prompt whose default is on (the floor: on in every configuration whose dependencies hold,
  tinyconfig's included); else a choice's pick; else the solver's choice.
- off: forbidden (`forbid`) or required off by a trace; left out by a passing minimisation try;
  not in the universe (the trace kernel has it off, and the composer never turns one on); an unmet
  dependency (which term, at the `config` entry's file:line, and why that symbol is off); or
  simply not needed (nothing requires it, so the objective left it off).
- int/hex/string: a `force` value, the trace kernel's value, or the Kconfig default.

A diff lists every symbol whose value differs between kernel A and kernel B (absent is `n`),
each with the reason on both sides, grouped by subsystem (the top two levels of the Kconfig
menu the option is in), and the code-size difference per source directory (`sizes.json`
objects grouped by their top two path levels).

Exit codes: 0 success; 3 bad input (an unknown symbol, with close matches; an unreadable
`.config`): JSON `{"error": ...}` on stdout; anything else is a failure (details on stderr).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import tempfile
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from kernel_rules.domain.kconfig.fragments import FragmentError, parse_config

EXPLAIN_FORMAT = "kernel_rules/explanation@1"
DIFF_FORMAT = "kernel_rules/kernel-diff@1"
ON = ("y", "m")
ON_REQUIREMENTS = ("y", "m", "ym")
MAX_DEPTH = 40  # the longest chain of Kconfig links walked back from a symbol
UNMET_DEPTH = 3
LINK_KINDS = ("select", "imply", "depends on")
VERDICT_OF_LINK = {
    "select": "selected",
    "imply": "implied",
    "depends on": "needed",
}  # how far an unmet dependency's own reason is followed
_ENTRY = re.compile(
    r"^\s*(config|menuconfig|choice|endchoice|menu|endmenu|if|endif|comment|source|mainmenu)\b"
)
_SOURCE = re.compile(r"^(app|baseline) (\S+)(?: \((.*)\))?$")
_FIELD = re.compile(r"^(\S+) field `([a-z_]+)(?:`\[(\d+)\]|=([^`]*)`)$")
_WORD = re.compile(r"[A-Za-z0-9_]+")


NO_REQUIREMENTS = (
    "not a tailored kernel: its values come from its base configuration and fragments, so "
    "the links show what in its Kconfig holds the value, not what asked for it"
)


class InputError(Exception):
    """A symbol, file or document that cannot be explained; the message names it."""


@dataclass
class KernelFacts:
    """What is known about one kernel: `config` always; the rest for a tailored kernel.

    `requirements` is its requirements.json, `sets` its config sets by target label, `universe`
    the trace kernel's configuration, `minimisation` its minimise.json, `build_files` the BUILD
    file of each target address, `force` its `force` lines (for int/hex/string values)."""

    label: str
    config: Dict[str, str]
    requirements: Optional[dict] = None
    sets: Dict[str, dict] = field(default_factory=dict)
    universe: Optional[Dict[str, str]] = None
    minimisation: Optional[dict] = None
    build_files: Dict[str, str] = field(default_factory=dict)
    force: Tuple[str, ...] = ()


def _kconfiglib():
    import kconfiglib  # imported lazily: the module is shipped into process sandboxes

    return kconfiglib


# ---------------------------------------------------------------------------------------------
# the Kconfig side


def where(node) -> str:
    return f"{node.filename}:{node.linenr}"


def entry_line(srctree: str, node, keyword: str, symbol: str) -> Optional[str]:
    """The file:line of the `keyword symbol` line (`select X`, `imply X`, `depends on ... X ...`)
    inside the Kconfig entry that starts at `node`, or None (e.g. a dependency inherited from an
    enclosing `if` or `menu`)."""
    try:
        with open(os.path.join(srctree, node.filename), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    if keyword == "depends on":
        pattern = re.compile(r"^\s*depends\s+on\b.*\b" + re.escape(symbol) + r"\b")
    else:
        pattern = re.compile(r"^\s*" + keyword + r"\s+" + re.escape(symbol) + r"\b")
    for i in range(node.linenr, len(lines)):  # linenr is 1-based: lines[linenr] is the next line
        if _ENTRY.match(lines[i]):
            break
        if pattern.match(lines[i]):
            return f"{node.filename}:{i + 1}"
    return None


def close_matches(kconf, name: str, n: int = 5) -> List[str]:
    """Defined symbols whose names contain `name`, then the most similar ones (difflib)."""
    names = sorted(s.name for s in kconf.unique_defined_syms)
    wanted = name.upper()
    out = [s for s in names if wanted in s][:n]
    for s in difflib.get_close_matches(wanted, names, n=n, cutoff=0.6):
        if s not in out and len(out) < n:
            out.append(s)
    return out


def lookup(kconf, name: str):
    """The Kconfig symbol `name` (with or without CONFIG_); InputError naming close matches."""
    symbol = name[len("CONFIG_") :] if name.startswith("CONFIG_") else name
    sym = kconf.syms.get(symbol)
    if sym is None or not sym.nodes:
        near = close_matches(kconf, symbol)
        raise InputError(
            f"CONFIG_{symbol} is not a Kconfig symbol of this kernel's source and architecture"
            + (f"; close matches: {', '.join('CONFIG_' + s for s in near)}" if near else "")
        )
    return sym


def menu_path(node) -> List[str]:
    """The prompts of the menus (and menuconfig entries) enclosing `node`, outermost first."""
    K = _kconfiglib()
    out: List[str] = []
    parent = node.parent
    while parent is not None and parent is not node.kconfig.top_node:
        if parent.prompt and (parent.item is K.MENU or getattr(parent, "is_menuconfig", False)):
            out.append(parent.prompt[0])
        parent = parent.parent
    return list(reversed(out))


def subsystem(kconf, symbol: str) -> str:
    """The top two levels of the Kconfig menu `symbol` is in ("General setup",
    "Device Drivers / Character devices"); its Kconfig file's directory when it is in no menu."""
    sym = kconf.syms.get(symbol)
    if sym is None or not sym.nodes:
        return "(not in this Kconfig)"
    node = sym.nodes[0]
    path = menu_path(node) + ([node.prompt[0]] if node.is_menuconfig and node.prompt else [])
    if path:
        return " / ".join(path[:2])
    return os.path.dirname(sym.nodes[0].filename) or "(top level)"


class KconfigIndex:
    """Reverse links of a parsed Kconfig: who selects, implies and depends on each symbol."""

    def __init__(self, kconf, srctree: str) -> None:
        K = _kconfiglib()
        self.kconf, self.srctree = kconf, srctree
        self.selected_by: Dict[str, List[Tuple[object, object, object]]] = defaultdict(list)
        self.implied_by: Dict[str, List[Tuple[object, object, object]]] = defaultdict(list)
        self.needed_by: Dict[str, List[Tuple[object, object]]] = defaultdict(list)
        for sym in kconf.unique_defined_syms:
            for node in sym.nodes:
                for target, cond in node.selects:
                    self.selected_by[target.name].append((sym, node, cond))
                for target, cond in node.implies:
                    self.implied_by[target.name].append((sym, node, cond))
                seen = set()
                for term in K.split_expr(node.dep, K.AND):
                    if isinstance(term, K.Symbol) and term.name not in seen:
                        seen.add(term.name)
                        self.needed_by[term.name].append((sym, node))

    def expr_value(self, expr) -> int:
        return _kconfiglib().expr_value(expr)

    def expr_str(self, expr) -> str:
        return _kconfiglib().expr_str(expr)


# ---------------------------------------------------------------------------------------------
# the requirement side


def parse_source(text: str, facts: KernelFacts, symbol: str) -> dict:
    """One source string of requirements.json as a structured record: a config set's target
    (with the phases and evidence its set records for `symbol`), a BUILD field, or a policy."""
    m = _SOURCE.match(text)
    if m:
        kind, target, evidence = m.groups()
        out = {"kind": kind, "target": target, "text": text}
        if evidence:
            out["evidence"] = evidence
        doc = facts.sets.get(target)
        req = (doc or {}).get("requirements", {}).get(symbol)
        if req is None and doc is not None:
            req = next((c for c in doc.get("conditions", []) if c.get("formula") == symbol), None)
        if req:
            if req.get("phases"):
                out["phases"] = list(req["phases"])
            if req.get("evidence"):
                out["all_evidence"] = list(req["evidence"])[:5]
        return out
    m = _FIELD.match(text)
    if m:
        target, name, index, value = m.groups()
        build = facts.build_files.get(target, target.split(":")[0] + "/BUILD")
        out = {"kind": name, "target": target, "build_file": build, "field": name, "text": text}
        out["where"] = f"{build}: {name}" + (f"[{index}]" if index is not None else f"={value}")
        return out
    return {"kind": "policy", "text": text}


def requirement_of(facts: KernelFacts, symbol: str) -> Dict[str, List[str]]:
    if facts.requirements is None:
        return {}
    return facts.requirements.get("requirements", {}).get(symbol, {})


def conditions_naming(facts: KernelFacts, symbol: str) -> List[dict]:
    if facts.requirements is None:
        return []
    return [
        {"formula": formula, "sources": sources}
        for formula, sources in facts.requirements.get("conditions", {}).items()
        if symbol in _WORD.findall(formula)
    ]


def _requirement_link(facts: KernelFacts, symbol: str, value: str, sources: Sequence[str]):
    return {
        "kind": "requirement",
        "symbol": symbol,
        "value": value,
        "sources": [parse_source(s, facts, symbol) for s in sources],
    }


# ---------------------------------------------------------------------------------------------
# explaining one symbol


class Explainer:
    """Explains symbols of one kernel: `kconf` must have `facts.config` loaded (`load`)."""

    def __init__(self, index: KconfigIndex, facts: KernelFacts) -> None:
        self.index, self.facts, self.kconf = index, facts, index.kconf

    @classmethod
    def load(cls, index: KconfigIndex, facts: KernelFacts) -> "Explainer":
        """Load `facts.config` into the index's Kconfig, so that conditions evaluate as in it."""
        with tempfile.NamedTemporaryFile("w", suffix=".config", delete=False) as f:
            for sym, value in sorted(facts.config.items()):
                if value == "n":
                    f.write(f"# CONFIG_{sym} is not set\n")
                else:
                    f.write(f"CONFIG_{sym}={value}\n")
        try:
            index.kconf.load_config(f.name)
        finally:
            os.unlink(f.name)
        return cls(index, facts)

    def value(self, symbol: str) -> str:
        return self.facts.config.get(symbol, "n")

    def is_on(self, symbol: str) -> bool:
        return self.value(symbol) in ON

    # -- links into a symbol, active in this configuration

    def _select_links(self, symbol: str, kind: str) -> List[dict]:
        table = self.index.selected_by if kind == "select" else self.index.implied_by
        out = []
        for by, node, cond in table.get(symbol, ()):
            if not self.is_on(by.name) or self.index.expr_value(cond) == 0:
                continue
            link = {
                "kind": kind,
                "symbol": symbol,
                "by": by.name,
                "at": where(node),
                "line": entry_line(self.index.srctree, node, kind, symbol),
            }
            out.append(link)
        return out

    def _dependency_links(self, symbol: str) -> List[dict]:
        out = []
        seen = set()
        for by, node in self.index.needed_by.get(symbol, ()):
            if self.is_on(by.name) and by.name != symbol and by.name not in seen:
                seen.add(by.name)
                out.append(
                    {
                        "kind": "depends on",
                        "symbol": symbol,
                        "by": by.name,
                        "at": where(node),
                        "line": entry_line(self.index.srctree, node, "depends on", symbol),
                    }
                )
        return out

    def links_into(self, symbol: str) -> List[dict]:
        return (
            self._select_links(symbol, "select")
            + self._select_links(symbol, "imply")
            + self._dependency_links(symbol)
        )

    # -- roots: what decides a symbol without another symbol's help

    def requirement_root(self, symbol: str) -> Optional[dict]:
        for value, sources in sorted(requirement_of(self.facts, symbol).items()):
            if value in ON_REQUIREMENTS:
                return _requirement_link(self.facts, symbol, value, sources)
        return None

    def default_link(self, sym, floor: bool) -> Optional[dict]:
        """The first default of `sym` that is on in this configuration, as a link, or None."""
        for default, cond in sym.defaults:
            if self.index.expr_value(cond) and self.index.expr_value(default):
                node = next((n for n in sym.nodes if (default, cond) in n.defaults), sym.nodes[0])
                return {
                    "kind": "default",
                    "symbol": sym.name,
                    "at": where(node),
                    "default": self.index.expr_str(default),
                    "condition": None if cond is self.kconf.y else self.index.expr_str(cond),
                    "floor": floor,
                }
        return None

    def default_root(self, symbol: str) -> Optional[dict]:
        """A Kconfig default that turns `symbol` on, when no visible prompt can turn it off."""
        sym = self.kconf.syms.get(symbol)
        if sym is None or sym.visibility or sym.choice is not None:
            return None
        return self.default_link(sym, floor=True)

    def chain_to(self, symbol: str, root, kinds=LINK_KINDS) -> Optional[List[dict]]:
        """The shortest chain of active links from `symbol` back to a symbol for which `root`
        gives a record (breadth first, at most MAX_DEPTH links), or None."""
        first = root(symbol)
        if first is not None:
            return [first]
        parents: Dict[str, Tuple[str, dict]] = {}
        queue = deque([(symbol, 0)])
        seen = {symbol}
        while queue:
            current, depth = queue.popleft()
            if depth >= MAX_DEPTH:
                continue
            for link in self.links_into(current):
                if link["kind"] not in kinds:
                    continue
                by = link["by"]
                if by in seen:
                    continue
                seen.add(by)
                parents[by] = (current, link)
                found = root(by)
                if found is not None:
                    chain = [found]
                    node = by
                    while node != symbol:
                        node, link_in = parents[node]
                        chain.append(link_in)
                    return list(reversed(chain))
                queue.append((by, depth + 1))
        return None

    # -- the explanation

    def explain(self, name: str, depth: int = 0) -> dict:
        K = _kconfiglib()
        sym = lookup(self.kconf, name)
        symbol = sym.name
        value = self.value(symbol)
        node = sym.nodes[0]
        doc = {
            "symbol": symbol,
            "value": value,
            "type": K.TYPE_TO_STR[sym.orig_type],
            "defined_at": [where(n) for n in sym.nodes],
            "prompt": next((n.prompt[0] for n in sym.nodes if n.prompt), None),
            "menu": menu_path(node),
        }
        conditions = conditions_naming(self.facts, symbol)
        if conditions:
            doc["conditions"] = conditions
        if value == "n":
            doc.update(self._explain_off(sym, depth))
        elif sym.orig_type not in (K.BOOL, K.TRISTATE):
            doc.update(self._explain_value(sym, value))
        elif value in ON:
            doc.update(self._explain_on(sym))
        else:
            doc.update(self._explain_off(sym, depth))
        if self.facts.requirements is None and depth == 0:
            doc["notes"] = [NO_REQUIREMENTS, *doc.get("notes", [])]
        return doc

    def _explain_on(self, sym) -> dict:
        symbol = sym.name
        chain = self.chain_to(symbol, self.requirement_root)
        direct = self.links_into(symbol)
        out: dict = {}
        if chain is not None:
            kind = "required" if len(chain) == 1 else chain[0]["kind"]
            root = chain[-1]
            out["verdict"] = VERDICT_OF_LINK.get(kind, kind)
            out["summary"] = (
                f"required ({root['value']})"
                if len(chain) == 1
                else f"{_link_phrase(chain[0])}, back to the requirement on CONFIG_{root['symbol']}"
            )
        else:
            # only a select or imply makes another option's default this one's reason: an
            # option's `depends on` needs this one on, but a default does not ask for it
            chain = self.chain_to(symbol, self.default_root, ("select", "imply"))
            if chain is not None:
                root = chain[-1]
                out["verdict"] = "default" if len(chain) == 1 else VERDICT_OF_LINK[chain[0]["kind"]]
                out["summary"] = (
                    f"the Kconfig default ({root['at']}); it has no visible prompt, so it is on "
                    "wherever its dependencies hold (the floor)"
                    if len(chain) == 1
                    else f"{_link_phrase(chain[0])}, back to the Kconfig default of "
                    f"CONFIG_{root['symbol']} ({root['at']})"
                )
            elif sym.choice is not None:
                choice = sym.choice
                cnode = choice.nodes[0]
                out["verdict"] = "choice"
                chain = [
                    {
                        "kind": "choice",
                        "symbol": sym.name,
                        "at": where(cnode),
                        "prompt": cnode.prompt[0] if cnode.prompt else None,
                        "default": bool(choice.selection is sym and choice.user_selection is None),
                        "members": [m.name for m in choice.syms],
                    }
                ]
                out["summary"] = f"the pick of the choice at {where(cnode)}" + (
                    f" ({cnode.prompt[0]})" if cnode.prompt else ""
                )
            elif self.default_link(sym, floor=False) is not None:
                link = self.default_link(sym, floor=False)
                out["verdict"] = "default"
                chain = [link]
                out["summary"] = f"its Kconfig default ({link['at']}); nothing else needs it"
            else:
                out["verdict"] = "solver"
                chain = []
                out["summary"] = (
                    "no requirement, select, imply or dependency of an enabled option needs it"
                    + (
                        " (a traced condition names it)"
                        if conditions_naming(self.facts, sym.name)
                        else ""
                    )
                    + (
                        ": the composer's pick"
                        if self.facts.requirements is not None
                        else ": set so by the kernel's base configuration or fragments"
                    )
                )
        out["chain"] = chain
        also = [link for link in direct if link not in chain and link["kind"] != "depends on"]
        if also:
            out["also"] = also
        dependents = sorted({link["by"] for link in direct if link["kind"] == "depends on"})
        if dependents:
            out["needed_by"] = dependents
        return out

    def _explain_off(self, sym, depth: int) -> dict:
        K = _kconfiglib()
        symbol = sym.name
        facts = self.facts
        req = requirement_of(facts, symbol)
        notes: List[str] = []
        for value in ("n", "not-y"):
            if value in req:
                link = _requirement_link(facts, symbol, value, req[value])
                kinds = {s["kind"] for s in link["sources"]}
                verdict = (
                    "forbidden"
                    if "forbid" in kinds
                    else "policy"
                    if "policy" in kinds or kinds & {"debug_info"}
                    else "required-off"
                )
                return {
                    "verdict": verdict,
                    "summary": {
                        "forbidden": "forbidden by the target's `forbid` field",
                        "policy": "off by policy: " + "; ".join(s["text"] for s in link["sources"]),
                        "required-off": "a trace requires it off",
                    }[verdict],
                    "chain": [link],
                }
        try_record = removed_by_try(facts.minimisation, symbol)
        if try_record is not None:
            return {
                "verdict": "removed-by-try",
                "summary": f"left out by minimisation try {try_record['try']}, which passed",
                "chain": [{"kind": "minimisation", "symbol": symbol, **try_record}],
            }
        for r in (facts.requirements or {}).get("relaxed", []):
            if re.match(r"^" + re.escape(symbol) + r"\b", r.get("requirement", "")):
                notes.append(f"a requirement was relaxed: {r['requirement']}: {r['why']}")
        unmet = []
        for term in K.split_expr(sym.direct_dep, K.AND):
            if self.index.expr_value(term) == 0:
                unmet.append(term)
        if unmet:
            node = next((n for n in sym.nodes if self.index.expr_value(n.dep) == 0), sym.nodes[0])
            links = []
            for term in unmet:
                link = {
                    "kind": "unmet dependency",
                    "symbol": symbol,
                    "dependency": self.index.expr_str(term),
                    "at": where(node),
                }
                names = [s.name for s in K.expr_items(term) if isinstance(s, K.Symbol) and s.nodes]
                if len(names) == 1:
                    link["line"] = entry_line(self.index.srctree, node, "depends on", names[0])
                    if isinstance(term, K.Symbol) and depth < UNMET_DEPTH and term is not sym:
                        sub = self.explain(term.name, depth + 1)
                        link["because"] = {
                            "symbol": sub["symbol"],
                            "value": sub["value"],
                            "verdict": sub["verdict"],
                            "summary": sub["summary"],
                        }
                links.append(link)
            return {
                "verdict": "unmet-dependency",
                "summary": "unmet dependency: "
                + ", ".join(f"{link['dependency']} ({link['at']})" for link in links),
                "chain": links,
                **({"notes": notes} if notes else {}),
            }
        if facts.universe is not None and sym.choice is None:
            if facts.universe.get(symbol, "n") not in ON:
                return {
                    "verdict": "outside-universe",
                    "summary": "the trace kernel has it off: a tailored kernel turns off "
                    "options of its trace kernel, and never turns one on",
                    "chain": [],
                    **({"notes": notes} if notes else {}),
                }
        if not sym.visibility:
            return {
                "verdict": "default-off",
                "summary": "no visible prompt and no default or select turns it on",
                "chain": [],
                **({"notes": notes} if notes else {}),
            }
        return {
            "verdict": "not-needed",
            "summary": "nothing requires, selects or depends on it, so the objective left it off"
            if facts.requirements is not None
            else "off in this configuration; no enabled option selects or depends on it",
            "chain": [],
            **({"notes": notes} if notes else {}),
        }

    def _explain_value(self, sym, value: str) -> dict:
        for i, line in enumerate(self.facts.force):
            if re.match(r"^(CONFIG_)?" + re.escape(sym.name) + r"=", line.strip()):
                build = self.facts.build_files.get(self.facts.label, "BUILD")
                return {
                    "verdict": "forced",
                    "summary": f"set by `force` ({build}: force[{i}])",
                    "chain": [
                        {
                            "kind": "force",
                            "symbol": sym.name,
                            "where": f"{build}: force[{i}]",
                            "line": line,
                        }
                    ],
                }
        if self.facts.universe is not None and self.facts.universe.get(sym.name) == value:
            return {
                "verdict": "trace-kernel-value",
                "summary": "the trace kernel's value (a tailored kernel keeps int, hex and "
                "string values of its trace kernel unless `force` sets them)",
                "chain": [],
            }
        for default, cond in sym.defaults:
            if self.index.expr_value(cond):
                node = next((n for n in sym.nodes if (default, cond) in n.defaults), sym.nodes[0])
                return {
                    "verdict": "default",
                    "summary": f"the Kconfig default {self.index.expr_str(default)} "
                    f"({where(node)})",
                    "chain": [
                        {
                            "kind": "default",
                            "symbol": sym.name,
                            "at": where(node),
                            "default": self.index.expr_str(default),
                        }
                    ],
                }
        return {"verdict": "value", "summary": "set in the configuration", "chain": []}


def _link_phrase(link: dict) -> str:
    return {
        "select": f"selected by CONFIG_{link.get('by')}",
        "imply": f"implied by CONFIG_{link.get('by')}",
        "depends on": f"needed by CONFIG_{link.get('by')} (it depends on it)",
    }.get(link["kind"], link["kind"])


def removed_by_try(minimisation: Optional[dict], symbol: str) -> Optional[dict]:
    """The first passing try of a minimise.json that left `symbol` out, when the minimisation
    removed it: {try, left_out (count), new}."""
    if not minimisation or symbol not in minimisation.get("removed", ()):
        return None
    for t in minimisation.get("tries", ()):
        if t.get("passed") and symbol in (t.get("new") or t.get("left_out") or ()):
            return {
                "try": t.get("try"),
                "left_out": len(t.get("left_out") or ()),
                "new": list(t.get("new") or ())[:20],
            }
    return {"try": None, "left_out": 0, "new": []}


# ---------------------------------------------------------------------------------------------
# diff


def size_groups(objects: Mapping[str, int], levels: int = 2) -> Dict[str, int]:
    """Code bytes per source directory: each object's path cut to its top `levels` directories
    (`net/unix/af_unix.c` -> `net/unix`, `init/main.c` -> `init`)."""
    out: Dict[str, int] = defaultdict(int)
    for path, size in objects.items():
        parts = path.split("/")[:-1]
        out["/".join(parts[:levels]) or "."] += int(size)
    return dict(out)


def size_diff(a: Mapping[str, int], b: Mapping[str, int]) -> List[dict]:
    """Per source directory, A's and B's code bytes and B - A, for directories that differ;
    the largest differences first."""
    ga, gb = size_groups(a), size_groups(b)
    rows = [
        {"directory": d, "a": ga.get(d, 0), "b": gb.get(d, 0), "delta": gb.get(d, 0) - ga.get(d, 0)}
        for d in sorted(set(ga) | set(gb))
        if ga.get(d, 0) != gb.get(d, 0)
    ]
    return sorted(rows, key=lambda r: (-abs(r["delta"]), r["directory"]))


def changed_symbols(a: Mapping[str, str], b: Mapping[str, str]) -> List[str]:
    """The symbols whose value differs between two configurations (absent counts as `n`)."""
    return sorted(s for s in set(a) | set(b) if a.get(s, "n") != b.get(s, "n"))


def change_kind(va: str, vb: str) -> str:
    if va == "n":
        return "added"
    if vb == "n":
        return "removed"
    return "changed"


def _brief(doc: Optional[dict]) -> Optional[dict]:
    if doc is None:
        return None
    return {"verdict": doc["verdict"], "summary": doc["summary"], "chain": doc["chain"]}


def diff(index: KconfigIndex, a: KernelFacts, b: KernelFacts) -> dict:
    """Every symbol whose value differs between `a` and `b`, with the reason on each side,
    grouped by subsystem; loads each side's config into the index's Kconfig in turn."""
    changed = changed_symbols(a.config, b.config)
    known = [s for s in changed if s in index.kconf.syms and index.kconf.syms[s].nodes]
    why: Dict[str, Dict[str, dict]] = {"a": {}, "b": {}}
    for side, facts in (("a", a), ("b", b)):
        explainer = Explainer.load(index, facts)
        for s in known:
            why[side][s] = _brief(explainer.explain(s))
    groups: Dict[str, List[dict]] = defaultdict(list)
    for s in changed:
        va, vb = a.config.get(s, "n"), b.config.get(s, "n")
        sym = index.kconf.syms.get(s)
        row = {
            "symbol": s,
            "a": va,
            "b": vb,
            "change": change_kind(va, vb),
            "defined_at": where(sym.nodes[0]) if sym is not None and sym.nodes else None,
            "why_a": why["a"].get(s),
            "why_b": why["b"].get(s),
        }
        groups[subsystem(index.kconf, s)].append(row)
    counts = defaultdict(int)
    for rows in groups.values():
        for row in rows:
            counts[row["change"]] += 1
    return {
        "format": DIFF_FORMAT,
        "a": a.label,
        "b": b.label,
        "counts": {k: counts.get(k, 0) for k in ("added", "removed", "changed")},
        "groups": [{"subsystem": g, "options": rows} for g, rows in sorted(groups.items())],
    }


# ---------------------------------------------------------------------------------------------
# text


def _link_text(link: dict) -> str:
    kind = link["kind"]
    if kind == "requirement":
        head = f"CONFIG_{link['symbol']} is required ({link['value']}) by:"
        lines = [head]
        for s in link["sources"]:
            if "where" in s:
                lines.append(f"      {s['where']}  ({s['target']})")
            else:
                extra = f"  [phases: {', '.join(s['phases'])}]" if s.get("phases") else ""
                lines.append(f"      {s['text']}{extra}")
        return "\n".join(lines)
    if kind in ("select", "imply"):
        line = f"; `{kind} {link['symbol']}` at {link['line']}" if link.get("line") else ""
        return f"CONFIG_{link['symbol']} is {kind}ed by CONFIG_{link['by']} (config {link['by']} at {link['at']}{line})".replace(
            "implyed", "implied"
        )
    if kind == "depends on":
        line = f"; `depends on` at {link['line']}" if link.get("line") else ""
        return (
            f"CONFIG_{link['symbol']} is needed by CONFIG_{link['by']}, which depends on it "
            f"(config {link['by']} at {link['at']}{line})"
        )
    if kind == "default":
        cond = f" if {link['condition']}" if link.get("condition") else ""
        return (
            f"CONFIG_{link['symbol']}: Kconfig default {link['default']}{cond} at {link['at']}"
            + ("; no visible prompt (the floor)" if link.get("floor") else "")
        )
    if kind == "choice":
        return (
            f"CONFIG_{link['symbol']} is the pick of the choice at {link['at']}"
            + (f" ({link['prompt']})" if link.get("prompt") else "")
            + (", its default" if link.get("default") else "")
        )
    if kind == "unmet dependency":
        line = f"; `depends on` at {link['line']}" if link.get("line") else ""
        text = (
            f"CONFIG_{link['symbol']} depends on {link['dependency']}, which does not hold "
            f"(config {link['symbol']} at {link['at']}{line})"
        )
        if link.get("because"):
            b = link["because"]
            text += f"\n      CONFIG_{b['symbol']}={b['value']}: {b['summary']}"
        return text
    if kind == "minimisation":
        return (
            f"CONFIG_{link['symbol']} was left out by minimisation try {link['try']}, which "
            "passed every app's workload"
        )
    if kind == "force":
        return f"CONFIG_{link['symbol']}: {link['where']}: {link['line']}"
    return json.dumps(link)


def render_explanation(doc: dict) -> str:
    lines = [f"{doc['target']}:"]
    for e in doc["symbols"]:
        at = ", ".join(e["defined_at"])
        lines.append(f"  CONFIG_{e['symbol']}={e['value']}  ({e['verdict']}; {at})")
        lines.append(f"    {e['summary']}")
        for i, link in enumerate(e["chain"], 1):
            lines.append(f"    {i}. {_link_text(link)}")
        for link in e.get("also", []):
            lines.append(f"    also: {_link_text(link)}")
        needed = e.get("needed_by", [])
        if needed:
            names = ", ".join(f"CONFIG_{s}" for s in needed[:8])
            more = f" and {len(needed) - 8} more" if len(needed) > 8 else ""
            lines.append(f"    enabled options that depend on it: {names}{more}")
        for c in e.get("conditions", []):
            lines.append(f"    traced condition {c['formula']}: {'; '.join(c['sources'])}")
        for n in e.get("notes", []):
            lines.append(f"    note: {n}")
    return "\n".join(lines) + "\n"


def render_diff(doc: dict) -> str:
    c = doc["counts"]
    lines = [
        f"{doc['a']} -> {doc['b']}: {c['added']} added, {c['removed']} removed, "
        f"{c['changed']} changed"
    ]
    for g in doc["groups"]:
        lines.append(f"\n{g['subsystem']}:")
        for row in g["options"]:
            sign = {"added": "+", "removed": "-", "changed": "~"}[row["change"]]
            lines.append(f"  {sign} CONFIG_{row['symbol']}: {row['a']} -> {row['b']}")
            for side in ("a", "b"):
                w = row[f"why_{side}"]
                if w is not None:
                    lines.append(f"      {doc[side]}: {w['summary']}")
    sizes = doc.get("sizes")
    if sizes is not None:
        lines.append(
            f"\ncode bytes per source directory (total {sizes['a_total']} -> {sizes['b_total']}, "
            f"{sizes['b_total'] - sizes['a_total']:+d}):"
        )
        for row in sizes["directories"]:
            lines.append(
                f"  {row['directory']:<32} {row['a']:>9} -> {row['b']:>9}  {row['delta']:+d}"
            )
    elif doc.get("sizes_note"):
        lines.append(f"\n{doc['sizes_note']}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# the program


def read_config(path: str, what: str) -> Dict[str, str]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(f"{what}: cannot read {path}: {e.strerror}") from None
    try:
        return parse_config(data.decode("utf-8"), what)
    except UnicodeDecodeError as e:
        raise InputError(f"{what}: not UTF-8 text (byte {e.start})") from None
    except FragmentError as e:
        raise InputError(f"{what}: not a kernel .config: {e}") from None


def _json(path: Optional[str]) -> Optional[dict]:
    if not path:
        return None
    with open(path) as f:
        return json.load(f)


def facts_from_args(prefix: str, args: argparse.Namespace) -> KernelFacts:
    get = lambda name: getattr(args, f"{prefix}{name}")  # noqa: E731
    sets = {}
    for spec in get("set") or ():
        label, _, path = spec.partition("=")
        sets[label] = _json(path)
    build_files = dict(spec.partition("=")[::2] for spec in (get("build_file") or ()))
    label = get("label")
    return KernelFacts(
        label=label,
        config=read_config(get("config"), label),
        requirements=_json(get("requirements")),
        sets=sets,
        universe=read_config(get("universe"), f"{label}'s trace kernel")
        if get("universe")
        else None,
        minimisation=_json(get("minimise")),
        build_files=build_files,
        force=tuple(get("force") or ()),
    )


def _kernel_args(p: argparse.ArgumentParser, prefix: str, what: str) -> None:
    dash = prefix.replace("_", "-")
    p.add_argument(f"--{dash}label", required=prefix == "", help=f"{what}: its name, for output")
    p.add_argument(f"--{dash}config", help=f"{what}: its .config")
    p.add_argument(f"--{dash}requirements", help=f"{what}: its requirements.json")
    p.add_argument(f"--{dash}set", action="append", help=f"{what}: TARGET=PATH of a config set")
    p.add_argument(f"--{dash}universe", help=f"{what}: the trace kernel's .config")
    p.add_argument(f"--{dash}minimise", help=f"{what}: its minimise.json")
    p.add_argument(f"--{dash}build-file", action="append", help=f"{what}: TARGET=BUILD file")
    p.add_argument(f"--{dash}force", action="append", help=f"{what}: its `force` lines")
    p.add_argument(f"--{dash}sizes", help=f"{what}: its sizes.json")


def load_tree(args: argparse.Namespace):
    """(kconf, srctree) of the pinned tarball, unpacked in the named cache."""
    from kernel_rules.domain.build.warm_trees import unpack_source
    from kernel_rules.domain.kconfig.tree import load_kconfig

    src = unpack_source(args.cache, args.tarball, args.sha256)
    return load_kconfig(src, args.arch, os.environ), src


def run_explain(args: argparse.Namespace, index: KconfigIndex) -> dict:
    if not args.symbol:
        raise InputError("no symbols to explain: pass --symbol=NAME (one or more)")
    facts = facts_from_args("", args)
    explainer = Explainer.load(index, facts)
    return {
        "format": EXPLAIN_FORMAT,
        "target": facts.label,
        "symbols": [explainer.explain(s) for s in args.symbol],
    }


def run_diff(args: argparse.Namespace, index: KconfigIndex) -> dict:
    a, b = facts_from_args("", args), facts_from_args("b_", args)
    doc = diff(index, a, b)
    sizes = [_json(p) for p in (args.sizes, args.b_sizes)]
    if all(s is not None for s in sizes):
        oa, ob = (s.get("objects", {}) for s in sizes)
        doc["sizes"] = {
            "a_total": sum(oa.values()),
            "b_total": sum(ob.values()),
            "directories": size_diff(oa, ob),
        }
    else:
        doc["sizes_note"] = (
            "no code sizes: "
            + " and ".join(
                label for label, s in ((a.label, sizes[0]), (b.label, sizes[1])) if s is None
            )
            + " has no sizes.json"
        )
    return doc


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="explain", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("explain", "diff"))
    p.add_argument("--tarball", required=True)
    p.add_argument("--sha256", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--arch", default="x86_64")
    p.add_argument("--symbol", action="append", default=[], help="a symbol to explain")
    p.add_argument("--out", required=True)
    _kernel_args(p, "", "kernel A (the kernel explained)")
    _kernel_args(p, "b_", "kernel B (diff)")
    args = p.parse_args(argv)
    try:
        if args.command == "diff" and not args.b_config:
            raise InputError("diff needs a second kernel (--b-config)")
        kconf, src = load_tree(args)
        index = KconfigIndex(kconf, src)
        if args.command == "explain":
            doc = run_explain(args, index)
            text = render_explanation(doc)
        else:
            doc = run_diff(args, index)
            text = render_diff(doc)
    except InputError as e:
        print(json.dumps({"error": str(e)}))
        return 3
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "explain.json"), "w") as f:
        f.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    with open(os.path.join(args.out, "explain.txt"), "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
