"""Composing kernel configurations: the cheapest valid `.config` that meets every requirement.

Input: a `KconfigModel` (the Kconfig fixpoint semantics as CNF, usually restricted to the trace
kernel's universe) and `Requirement`s, each a (symbol, value, source) with value

    y | m | ym (y or m) | n | not-y (n or m)

(the values of `configset.py`), or `holds` with a formula of config-set `conditions` in place of
the symbol (`LEGACY_PTYS || UNIX98_PTYS`, see `parse_formula`), and `source` a free-text label saying where it comes from
(e.g. "baseline examples/tracing:qemu-q35 (fs/proc/base.c:123)", "force in BUILD field").

`compose` solves weighted partial MaxSAT with RC2: hard = the model's clauses + every requirement;
soft = for each symbol that may be on, "it is off", costing its weight (default 1, or
`weights[symbol]`, e.g. an object size; y and m cost the same). The result is an optimum: a valid
configuration (`olddefconfig` leaves its bool/tristate values unchanged, up to the model's
documented approximations) meeting every requirement with the least total weight of enabled
symbols. Values: every bool/tristate symbol of the model as y/m/n, plus the int/hex/string values
the model was built with (the trace kernel's), ready for `render_config`.

When the requirements cannot all hold, `compose` raises `Unsatisfiable` with a minimal conflicting
subset: the requirements are solver assumptions, the solver's core is shrunk by deletion until
dropping any one requirement makes the rest satisfiable.

`close_over_dependencies` is the baseline for comparisons (Cozart-style): the required-on symbols
plus, transitively, the symbols their `depends on` needs, with no solver and no minimality.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from pysat.examples.rc2 import RC2Stratified
from pysat.formula import WCNF
from pysat.solvers import Solver

from kernel_rules.domain.kconfig.fragments import config_lines
from kernel_rules.domain.kconfig.model import KconfigModel

VALUES = ("y", "m", "ym", "n", "not-y", "holds")
FORMULA = "holds"  # the value of a Requirement whose `symbol` is a formula (see parse_formula)
_TOKEN = re.compile(r"\s*(\(|\)|!|&&|\|\||[A-Za-z0-9_]+(?:=[ym])?)")
SOLVER = "g4"


@dataclass(frozen=True)
class Requirement:
    """`symbol` (without CONFIG_) must have `value` (one of VALUES); `source` says who asks."""

    symbol: str
    value: str
    source: str

    def __post_init__(self) -> None:
        if self.value not in VALUES:
            raise ValueError(
                f"{self.source}: CONFIG_{self.symbol}: value {self.value!r} is "
                f"not one of {', '.join(VALUES)}"
            )

    def __str__(self) -> str:
        if self.value == FORMULA:
            return f"{self.symbol} (from {self.source})"
        return f"CONFIG_{self.symbol}={self.value} (from {self.source})"


def parse_formula(text: str):
    """A config-set condition (`A || !B=y`, `!(C && D=m)`: `X` is y or m, `X=y`, `X=m`; `!`,
    `&&`, `||`, parentheses) as a tree of tuples: ("sym", X, state), ("not", f), ("and"|"or",
    f, g). Raises ValueError on anything else (e.g. the `?(...)` of unknown conditions)."""
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"cannot parse condition {text!r} at {text[pos:]!r}")
        tokens.append(m.group(1))
        pos = m.end()

    def disj(i):
        f, i = conj(i)
        while i < len(tokens) and tokens[i] == "||":
            g, i = conj(i + 1)
            f = ("or", f, g)
        return f, i

    def conj(i):
        f, i = unary(i)
        while i < len(tokens) and tokens[i] == "&&":
            g, i = unary(i + 1)
            f = ("and", f, g)
        return f, i

    def unary(i):
        if i >= len(tokens):
            raise ValueError(f"condition {text!r} ends too early")
        if tokens[i] == "!":
            f, i = unary(i + 1)
            return ("not", f), i
        if tokens[i] == "(":
            f, i = disj(i + 1)
            if i >= len(tokens) or tokens[i] != ")":
                raise ValueError(f"unbalanced parentheses in {text!r}")
            return f, i + 1
        if tokens[i] in (")", "&&", "||"):
            raise ValueError(f"unexpected {tokens[i]!r} in {text!r}")
        name, _, state = tokens[i].partition("=")
        return ("sym", name, state or "ym"), i + 1

    tree, end = disj(0)
    if end != len(tokens):
        raise ValueError(f"trailing {tokens[end]!r} in {text!r}")
    return tree


def formula_holds(tree, config: Mapping[str, str]) -> bool:
    """Whether a parse_formula tree holds in a configuration ({symbol: y/m/n})."""
    kind = tree[0]
    if kind == "sym":
        v = config.get(tree[1], "n")
        return v in ("y", "m") if tree[2] == "ym" else v == tree[2]
    if kind == "not":
        return not formula_holds(tree[1], config)
    a, b = formula_holds(tree[1], config), formula_holds(tree[2], config)
    return (a and b) if kind == "and" else (a or b)


def _formula_literal(model: KconfigModel, tree):
    kind = tree[0]
    if kind == "sym":
        return model.literal(tree[1], tree[2])
    if kind == "not":
        lit = _formula_literal(model, tree[1])
        return (not lit) if isinstance(lit, bool) else -lit
    parts = [_formula_literal(model, tree[1]), _formula_literal(model, tree[2])]
    return model.and_(parts) if kind == "and" else model.or_(parts)


def requirement_literal(model: KconfigModel, r: Requirement):
    """The model literal of one requirement (a symbol's value, or a whole formula)."""
    if r.value == FORMULA:
        return _formula_literal(model, parse_formula(r.symbol))
    return model.literal(r.symbol, r.value)


def requirements(values: Mapping[str, str], source: str) -> List[Requirement]:
    """One Requirement per {symbol: value} entry, all with the same source label (sorted)."""
    return [Requirement(s, v, source) for s, v in sorted(values.items())]


class Unsatisfiable(Exception):
    """The requirements contradict each other (under the model). `conflict` is a minimal set:
    [(symbol, value, source)], dropping any one makes the others satisfiable."""

    def __init__(self, conflict: Sequence[Tuple[str, str, str]]):
        self.conflict = list(conflict)
        lines = "".join(
            f"\n  {s}  <- {src}" if v == FORMULA else f"\n  CONFIG_{s}={v}  <- {src}"
            for s, v, src in self.conflict
        )
        super().__init__(
            f"no valid kernel configuration meets these {len(self.conflict)} requirements "
            f"together (a minimal conflict: dropping any one of them resolves it):{lines}"
        )


def _selectors(
    model: KconfigModel, reqs: Sequence[Requirement]
) -> Tuple[List[int], List[List[int]]]:
    """One assumption variable per requirement, and the clauses `selector -> requirement`."""
    lits = [requirement_literal(model, r) for r in reqs]  # may add gates to model.clauses
    sel = [model.pool.id(("requirement", i)) for i in range(len(reqs))]
    clauses = [
        [-a] + ([] if lit is False else [lit]) for a, lit in zip(sel, lits) if lit is not True
    ]
    return sel, clauses


def minimal_conflict(
    model: KconfigModel, reqs: Sequence[Requirement]
) -> Optional[List[Requirement]]:
    """None when `reqs` can all hold; else a minimal subset of them that cannot (in input order)."""
    reqs = list(reqs)
    sel, clauses = _selectors(model, reqs)
    with Solver(name=SOLVER, bootstrap_with=model.clauses + clauses) as solver:
        if solver.solve(assumptions=sel):
            return None
        core = [a for a in sel if a in set(solver.get_core() or [])]
        i = 0
        while i < len(core):  # deletion-based minimisation
            trial = core[:i] + core[i + 1 :]
            if solver.solve(assumptions=trial):
                i += 1  # core[i] is needed
            else:
                smaller = set(solver.get_core() or [])
                core = [a for a in trial if a in smaller]
    index = {a: n for n, a in enumerate(sel)}
    return [reqs[index[a]] for a in core]


def incompatible_with(
    model: KconfigModel, base: Requirement, reqs: Sequence[Requirement]
) -> List[Requirement]:
    """The members of `reqs` that cannot hold together with `base` (each checked alone)."""
    reqs = list(reqs)
    sel, clauses = _selectors(model, [base] + reqs)
    with Solver(name=SOLVER, bootstrap_with=model.clauses + clauses) as solver:
        return [r for a, r in zip(sel[1:], reqs) if not solver.solve(assumptions=[sel[0], a])]


def compose(
    model: KconfigModel,
    reqs: Iterable[Requirement],
    weights: Optional[Mapping[str, int]] = None,
    default_weight: int = 1,
) -> Dict[str, str]:
    """The least-weight valid configuration meeting every requirement (see the module docstring).
    Raises Unsatisfiable (with a minimal conflict) when there is none."""
    reqs = list(reqs)
    conflict = minimal_conflict(model, reqs)
    if conflict is not None:
        raise Unsatisfiable([(r.symbol, r.value, r.source) for r in conflict])
    lits = [requirement_literal(model, r) for r in reqs]
    wcnf = WCNF()
    wcnf.extend(model.clauses)
    wcnf.extend([lit] for lit in lits if lit is not True)
    weights = weights or {}
    for name, tri in model.symbols.items():
        weight = weights.get(name, default_weight)
        if weight > 0 and model.in_universe(name):
            for kind in ("y", "m")[: 1 + tri]:
                wcnf.append([-model.var(name, kind)], weight=weight)
    with RC2Stratified(wcnf, solver=SOLVER) as rc2:
        solution = rc2.compute()
    if solution is None:  # cannot happen: minimal_conflict found the hard part satisfiable
        raise RuntimeError("MaxSAT solver found no model for a satisfiable formula")
    out = {name: model.value_of(solution, name) for name in model.symbols}
    for name, value in model.values.items():
        sym = model.kconf.syms.get(name)
        if name not in model.symbols and sym is not None and sym.nodes:  # defined int/hex/string
            out[name] = value
    return out


def enabled(values: Mapping[str, str]) -> List[str]:
    """The symbols that are y or m, sorted."""
    return sorted(s for s, v in values.items() if v in ("y", "m"))


def render_config(values: Mapping[str, str]) -> str:
    """`values` as .config text: one line per symbol, sorted by name; n as `# ... is not set`."""
    return "".join(line + "\n" for line in config_lines(values))


def close_over_dependencies(reqs: Mapping[str, str], kconf) -> Dict[str, str]:
    """Cozart-style baseline: the symbols required on (y, m, ym; ym counts as y), closed over
    their direct `depends on`: for `A && B` both, for `A || B` nothing if one alternative already
    holds, else the first; negations and comparisons add nothing. Returns {symbol: "y" | "m"};
    a dependency of an m symbol is m if it is a tristate, else y."""
    import kconfiglib as K

    out: Dict[str, str] = {}

    def holds(e) -> bool:
        if e.__class__ is tuple:
            if e[0] is K.AND:
                return holds(e[1]) and holds(e[2])
            if e[0] is K.OR:
                return holds(e[1]) or holds(e[2])
            return False
        return e.__class__ is K.Symbol and (e.is_constant and e.name in ("y", "m") or e.name in out)

    def needed(e) -> List:
        if e.__class__ is tuple:
            if e[0] is K.AND:
                return needed(e[1]) + needed(e[2])
            if e[0] is K.OR:
                return [] if holds(e) else needed(e[1])
            return []
        ok = e.__class__ is K.Symbol and not e.is_constant and e.orig_type in (K.BOOL, K.TRISTATE)
        return [e] if ok else []

    def add(name: str, value: str) -> bool:
        sym = kconf.syms.get(name)
        if (
            sym is None
            or sym.orig_type not in (K.BOOL, K.TRISTATE)
            or out.get(name) in (value, "y")
        ):
            return False
        out[name] = "y" if sym.orig_type is K.BOOL else value
        return True

    todo = [
        s
        for s, v in sorted(reqs.items())
        if v in ("y", "m", "ym") and add(s, "m" if v == "m" else "y")
    ]  # all requirements first, then their closure
    while todo:
        name = todo.pop(0)
        for dep in needed(kconf.syms[name].direct_dep):
            tri = dep.orig_type is K.TRISTATE
            if add(dep.name, "m" if out[name] == "m" and tri else "y"):
                todo.append(dep.name)
    return out
