"""Presence conditions: Boolean formulas over CONFIG symbols, shared by the Kbuild and C
preprocessor analyses and the config-set format.

A formula is one of
    TRUE, FALSE
    Sym(name, state)   CONFIG_<name> is "y" (built in), "m" (a module) or "ym" (either: enabled)
    Not(f), And(fs), Or(fs)
    Unknown(text)      a condition on something that is not a CONFIG symbol (a compiler macro,
                       an architecture macro, a numeric comparison): never guessed

`definite_facts(f)` extracts what *must* hold whenever `f` holds: the conjuncts that are plain
symbols or negated symbols. `Unknown` conjuncts are dropped (a sound weakening); a disjunction
yields nothing (it cannot say which branch held).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Iterable, Tuple, Union

STATES = ("y", "m", "ym")


@dataclass(frozen=True)
class Const:
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


TRUE = Const(True)
FALSE = Const(False)


@dataclass(frozen=True)
class Sym:
    name: str  # without the CONFIG_ prefix
    state: str = "ym"

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"Sym state must be one of {STATES}, got {self.state!r}")

    def __str__(self) -> str:
        return {"y": f"{self.name}=y", "m": f"{self.name}=m", "ym": self.name}[self.state]


@dataclass(frozen=True)
class Not:
    arg: "Formula"

    def __str__(self) -> str:
        return f"!{_paren(self.arg)}"


@dataclass(frozen=True)
class And:
    args: Tuple["Formula", ...]

    def __str__(self) -> str:
        return " && ".join(_paren(a) for a in self.args)


@dataclass(frozen=True)
class Or:
    args: Tuple["Formula", ...]

    def __str__(self) -> str:
        return " || ".join(_paren(a) for a in self.args)


@dataclass(frozen=True)
class Unknown:
    text: str

    def __str__(self) -> str:
        return f"?({self.text})"


Formula = Union[Const, Sym, Not, And, Or, Unknown]


def _paren(f: Formula) -> str:
    return f"({f})" if isinstance(f, (And, Or)) else str(f)


def conj(*args: Formula) -> Formula:
    """Simplifying conjunction: flattens, drops TRUE, absorbs FALSE, removes duplicates."""
    out = []
    for a in args:
        parts = a.args if isinstance(a, And) else (a,)
        for p in parts:
            if p == FALSE:
                return FALSE
            if p != TRUE and p not in out:
                out.append(p)
    if not out:
        return TRUE
    return out[0] if len(out) == 1 else And(tuple(out))


def disj(*args: Formula) -> Formula:
    """Simplifying disjunction: flattens, drops FALSE, absorbs TRUE, removes duplicates."""
    out = []
    for a in args:
        parts = a.args if isinstance(a, Or) else (a,)
        for p in parts:
            if p == TRUE:
                return TRUE
            if p != FALSE and p not in out:
                out.append(p)
    if not out:
        return FALSE
    return out[0] if len(out) == 1 else Or(tuple(out))


def neg(f: Formula) -> Formula:
    if isinstance(f, Const):
        return Const(not f.value)
    if isinstance(f, Not):
        return f.arg
    return Not(f)


Fact = Tuple[str, str]  # (symbol, "y" | "m" | "ym" | "n"): "n" means the symbol must be off


def definite_facts(f: Formula) -> FrozenSet[Fact]:
    """What must hold whenever `f` holds (see the module docstring)."""
    parts: Iterable[Formula] = f.args if isinstance(f, And) else (f,)
    facts = set()
    for p in parts:
        if isinstance(p, Sym):
            facts.add((p.name, p.state))
        elif isinstance(p, Not) and isinstance(p.arg, Sym):
            # !X=ym -> X off. !X=y -> X is m or off (not definite); !X=m -> y or off.
            if p.arg.state == "ym":
                facts.add((p.arg.name, "n"))
    return frozenset(facts)


def evaluate(f: Formula, config: dict) -> object:
    """True/False under `config` ({symbol: "y"|"m"|"n"|value}); None if an Unknown decides."""
    if isinstance(f, Const):
        return f.value
    if isinstance(f, Sym):
        v = config.get(f.name, "n")
        return v in ("y", "m") if f.state == "ym" else v == f.state
    if isinstance(f, Unknown):
        return None
    if isinstance(f, Not):
        v = evaluate(f.arg, config)
        return None if v is None else not v
    vals = [evaluate(a, config) for a in f.args]
    if isinstance(f, And):
        return False if False in vals else (None if None in vals else True)
    return True if True in vals else (None if None in vals else False)
