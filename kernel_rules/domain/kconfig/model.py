"""Kconfig as CNF: the set of `.config` files that Kconfig accepts unchanged, for a SAT solver.

A configuration C is *valid* when it is a fixpoint of the kernel's own `conf` (Linux 6.1
`scripts/kconfig/symbol.c:sym_calc_value`): reading C as the user values and recomputing every
symbol gives C back, so `make olddefconfig` leaves it as it is. `KconfigModel` encodes that set.

Variables: a bool symbol has one variable (`y`); a tristate has two (`y`, `m`), at most one true;
both false is `n`. Expressions are encoded in three-valued logic as pairs of literals
(value >= m, value == y) with Tseitin gates, so `&&` is min, `||` is max and `!` is 2 - x, as in
Kconfig. Per bool/tristate symbol S (vis = OR of its prompt conditions, which include every
`depends on`, `if` and `visible if` around it; rev = `select`ers; imp = `imply`ers; dep =
`depends on`; bool-type = S is bool, or tristate while MODULES=n; promote(x) = y if x = m and S is
bool-type, else x), modelled exactly as `sym_calc_value` does:

- no visible prompt (vis = n): S = promote(default OR (imp AND dep) OR rev), where default =
  min(value, cond) of the first `default value if cond` whose cond is not n (conditions carry the
  symbol's dependencies). Defaults are equalities, whether or not S has a prompt elsewhere.
- visible prompt, the user's value u in [n, vis]: S = promote(max(u, rev)), that is
  rev <= S <= promote(max(vis, rev)), and S != m when S is bool-type.
- so `depends on` bounds S from above unless a `select` forces it on against its dependencies
  (Kconfig only warns about that), and `select` bounds S from below.
- `imply` (weak reverse dependency): exact as above; in 6.1 it only changes invisible symbols (a
  visible symbol keeps the user's value), so it needs no soft preference.
- comparisons `A = B`, `A != B`, `A < B`, ...: exact between bool/tristate symbols and constants
  (n/m/y count as 0/1/2, as in `expr_calc_value`).
- bool choices: the choice is y when its prompt is visible and some member's prompt is visible;
  then exactly one member whose visibility is y is y (the user's pick; an invisible member follows
  its defaults). `select` and `imply` do not act on choice members: 6.1's `sym_calc_visibility`
  returns before computing them, so `conf` ignores them. `optional` choices: at most one (none in
  x86 6.1).

Approximations:
- int/hex/string symbols are not variables: they keep the values of the `values` config (the trace
  kernel's), absent ones are "". Comparisons with them (`NR_CPUS > 1`, `CLANG_VERSION >= 120000`)
  are constants. Their defaults and ranges are not modelled.
- tristate choices (one in x86 6.1, RAPIDIO_ENUM_BASIC): y mode iff modules are off or a member is
  y; an m-mode choice lets each visible member be m or n.
- a visible symbol is assumed to have a user value: true for every `.config` that `conf` writes
  and for `render_config` output (which lists every symbol), but a hand-written fragment that omits
  a visible symbol gets its default from `conf`, not a free choice.
- universe: with `universe` given, only symbols that are y/m there may be on; every other one is
  the constant n (and its variables are forced false), which keeps the model small. A
  configuration that needs another symbol on is, by design, outside the model.
"""

from __future__ import annotations

import itertools
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from pysat.formula import IDPool

Lit = Union[int, bool]  # a literal, or a constant folded to True / False
TV = Tuple[Lit, Lit]  # a tristate value: (value >= m, value == y)
N: TV = (False, False)
M: TV = (True, False)
Y: TV = (True, True)
TRI_CONST = {"n": N, "m": M, "y": Y}


def _kconfiglib():
    import kconfiglib  # lazily, like kernel_rules.domain.kconfig.tree

    return kconfiglib


def neg(lit: Lit) -> Lit:
    return (not lit) if isinstance(lit, bool) else -lit


class KconfigModel:
    """The CNF of one Kconfig tree. `clauses` are the hard clauses (Tseitin definitions included),
    `pool` allocates every variable; `literal()` may add definitional clauses for new gates."""

    def __init__(self, kconf, universe: Optional[Mapping[str, str]], values: Mapping[str, str]):
        self.kconf = kconf
        self.pool = IDPool()
        self.clauses: List[List[int]] = []
        self.values: Dict[str, str] = dict(values)  # non-bool symbol values (as in a .config)
        self.universe = (
            None if universe is None else {s for s, v in universe.items() if v in ("y", "m")}
        )
        self.symbols: Dict[str, bool] = {}  # bool/tristate symbol -> is tristate
        self.constraints: List[Tuple[str, str, int, int]] = []  # (symbol, text, first, end)
        self._defs: List[Tuple[int, Tuple[int, ...]]] = []  # gate = AND(inputs), in order
        self._gates: Dict[frozenset, int] = {}
        self._cache: Dict[Tuple[int, int], TV] = {}
        self._choice_tv: Dict[int, TV] = {}
        self._shown_y: Dict[str, Lit] = {}  # choice member -> its visibility is y

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        kconf,
        universe: Optional[Mapping[str, str]] = None,
        values: Optional[Mapping[str, str]] = None,
    ) -> "KconfigModel":
        """Encode `kconf` (a kconfiglib.Kconfig). `universe`: a .config as {symbol: value};
        only its y/m symbols may be on (None: no restriction). `values`: where int/hex/string
        values come from (default: `universe`; with neither, kconfiglib's current values)."""
        K = _kconfiglib()
        if values is None:
            values = (
                universe
                if universe is not None
                else {
                    s.name: s.str_value
                    for s in kconf.unique_defined_syms
                    if s.orig_type in (K.INT, K.HEX, K.STRING)
                }
            )
        self = cls(kconf, universe, values)
        syms = [s for s in kconf.unique_defined_syms if s.orig_type in (K.BOOL, K.TRISTATE)]
        for s in syms:  # primary variables first: 1..n, in Kconfig order
            self.symbols[s.name] = s.orig_type is K.TRISTATE
            self.pool.id(("y", s.name))
            if self.symbols[s.name]:
                self.pool.id(("m", s.name))
        self._false = self.pool.id(("const", "false"))
        self.clauses.append([-self._false])
        for s in syms:
            if self.symbols[s.name]:
                self._add(
                    s.name,
                    "a tristate is not both y and m",
                    [[-self.var(s.name, "y"), -self.var(s.name, "m")]],
                )
            if not self.in_universe(s.name):
                self._add(
                    s.name,
                    "outside the universe, so n",
                    [[-self.var(s.name, k)] for k in ("y", "m")[: 1 + self.symbols[s.name]]],
                )
        self._mod = self.tv(kconf.modules)[1]
        for s in syms:
            self._encode_symbol(s)
        for ch in kconf.unique_choices:
            self._encode_choice(ch)
        return self

    def in_universe(self, name: str) -> bool:
        return self.universe is None or name in self.universe

    def var(self, symbol: str, kind: str = "y") -> int:
        """The variable of `symbol` being exactly `kind` ("y" or "m"; "m" only for tristates)."""
        if symbol not in self.symbols or (kind == "m" and not self.symbols[symbol]):
            raise KeyError(f"no {kind!r} variable for {symbol!r}")
        return self.pool.id((kind, symbol))

    def _add(self, symbol: str, text: str, clauses: Iterable[Sequence[Lit]]) -> None:
        first = len(self.clauses)
        for c in clauses:
            if any(lit is True for lit in c):
                continue
            lits = [lit for lit in c if lit is not False]
            self.clauses.append(lits or [self._false])
        if len(self.clauses) > first:
            self.constraints.append((symbol, text, first, len(self.clauses)))

    # ---- gates and three-valued expressions --------------------------------------------------
    def and_(self, lits: Iterable[Lit]) -> Lit:
        out = set()
        for lit in lits:
            if lit is False:
                return False
            if lit is True:
                continue
            if -lit in out:
                return False
            out.add(lit)
        if len(out) <= 1:
            return next(iter(out)) if out else True
        key = frozenset(out)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = self.pool.id(("gate", len(self._gates)))
            self._defs.append((gate, tuple(sorted(out))))
            self.clauses.extend([-gate, lit] for lit in sorted(out))
            self.clauses.append([gate] + [-lit for lit in sorted(out)])
        return gate

    def or_(self, lits: Iterable[Lit]) -> Lit:
        return neg(self.and_(neg(lit) for lit in lits))

    def _ite(self, cond: Lit, a: Lit, b: Lit) -> Lit:
        return self.or_([self.and_([cond, a]), self.and_([neg(cond), b])])

    def tv(self, sym) -> TV:
        """The value of a kconfiglib Symbol (constants folded) as (>= m, == y)."""
        K = _kconfiglib()
        if sym.is_constant:
            return TRI_CONST.get(sym.name, N)
        if sym.name not in self.symbols or not self.in_universe(sym.name):
            return N  # int/hex/string and undefined symbols are n in a logical context
        y = self.var(sym.name, "y")
        if sym.orig_type is K.BOOL:
            return (y, y)
        return (self.or_([y, self.var(sym.name, "m")]), y)

    def _and_tv(self, tvs: Sequence[TV]) -> TV:
        return (self.and_(t[0] for t in tvs), self.and_(t[1] for t in tvs))

    def _or_tv(self, tvs: Sequence[TV]) -> TV:
        return (self.or_(t[0] for t in tvs), self.or_(t[1] for t in tvs))

    def expr(self, e, choice_as_y=None) -> TV:
        """Encode a kconfiglib expression. `choice_as_y`: a Choice read as y (see _choice)."""
        K = _kconfiglib()
        if e.__class__ is K.Choice:
            return Y if e is choice_as_y else self._choice(e)
        if e.__class__ is not tuple:
            return self.tv(e)
        key = (id(e), id(choice_as_y))
        if key not in self._cache:
            op = e[0]
            if op is K.AND or op is K.OR:
                parts = [self.expr(x, choice_as_y) for x in K.split_expr(e, op)]
                self._cache[key] = (self._and_tv if op is K.AND else self._or_tv)(parts)
            elif op is K.NOT:
                a = self.expr(e[1], choice_as_y)
                self._cache[key] = (neg(a[1]), neg(a[0]))
            else:
                hit = self.or_(
                    self.and_([ga, gb])
                    for ga, ta, sa in self._operand(e[1])
                    for gb, tb, sb in self._operand(e[2])
                    if _compare(op, ta, sa, tb, sb)
                )
                self._cache[key] = (hit, hit)
        return self._cache[key]

    def _operand(self, sym) -> List[Tuple[Lit, int, str]]:
        """The possible (condition, type, string value) of a relation operand."""
        K = _kconfiglib()
        if sym.orig_type in (K.BOOL, K.TRISTATE) or sym.name in TRI_CONST:
            m, y = self.tv(sym)
            return [
                (neg(m), K.TRISTATE, "n"),
                (self.and_([m, neg(y)]), K.TRISTATE, "m"),
                (y, K.TRISTATE, "y"),
            ]
        if sym.is_constant or sym.orig_type not in (K.INT, K.HEX, K.STRING):
            return [(True, K.UNKNOWN, sym.name)]
        value = self.values.get(sym.name, "")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = K.unescape(value[1:-1])
        return [(True, sym.orig_type, value)]

    # ---- symbols and choices ---------------------------------------------------------------
    def _promote(self, t: TV, bool_type: Lit) -> TV:
        return (t[0], self.or_([t[1], self.and_([t[0], bool_type])]))

    def _encode_symbol(self, sym) -> None:
        K = _kconfiglib()
        s, name, tri = self.tv(sym), sym.name, sym.orig_type is K.TRISTATE
        bool_type = neg(self._mod) if tri else True
        vis = self._or_tv([self.expr(n.prompt[1]) for n in sym.nodes if n.prompt])
        if sym.choice is not None and tri:  # a tristate member with prompt m in a y choice
            vis = (
                self.and_([vis[0], self.or_([vis[1], neg(self._choice(sym.choice)[1])])]),
                vis[1],
            )
        vis = self._promote(vis, bool_type)
        picked = vis[1] if sym.choice is not None else False  # value = the choice's selection
        self._shown_y[name] = picked
        default = N
        for value, cond in reversed(sym.defaults):
            c = self.expr(cond)
            v = self._and_tv([self.expr(value), c])
            default = (self._ite(c[0], v[0], default[0]), self._ite(c[0], v[1], default[1]))
        rev, dep = self.expr(sym.rev_dep), self.expr(sym.direct_dep)
        implied = self._and_tv([self.expr(sym.weak_rev_dep), dep])
        if sym.choice is not None:  # sym_calc_visibility() returns before computing them
            rev = implied = N
        computed = self._promote(self._or_tv([default, implied, rev]), bool_type)
        hidden = neg(vis[0])
        self._add(
            name,
            "no visible prompt: equals its default/imply/select value",
            [[neg(hidden), neg(s[i]), computed[i]] for i in (0, 1)]
            + [[neg(hidden), s[i], neg(computed[i])] for i in (0, 1)],
        )
        shown = self.and_([vis[0], neg(picked)])
        upper = self._promote(self._or_tv([vis, rev]), bool_type)
        self._add(
            name,
            "visible: at least its select value, at most its visibility",
            [[neg(shown), neg(rev[i]), s[i]] for i in (0, 1)]
            + [[neg(shown), neg(s[i]), upper[i]] for i in (0, 1)],
        )
        if tri:
            self._add(
                name,
                "m only when tristate-typed (MODULES=y, not in a y choice)",
                [[neg(s[0]), s[1], neg(bool_type)], [neg(s[0]), s[1], neg(picked)]],
            )

    def _choice(self, ch) -> TV:
        """The choice's mode: n, m (tristate choices only) or y."""
        K = _kconfiglib()
        if id(ch) not in self._choice_tv:
            self._choice_tv[id(ch)] = N  # (choices do not depend on themselves)
            vis = self._or_tv([self.expr(n.prompt[1]) for n in ch.nodes if n.prompt])
            member_vis = self.or_(
                self.expr(n.prompt[1], ch)[0] for m in ch.syms for n in m.nodes if n.prompt
            )
            some_y = self.or_(self.tv(m)[1] for m in ch.syms)
            y = self.and_([vis[0], member_vis, some_y if ch.is_optional else True])
            if ch.orig_type is K.TRISTATE:
                y = self.and_([y, self.or_([neg(self._mod), self.and_([vis[1], some_y])])])
                self._choice_tv[id(ch)] = (self.or_([y, self.and_([vis[0], self._mod])]), y)
            else:
                self._choice_tv[id(ch)] = (y, y)
        return self._choice_tv[id(ch)]

    def _encode_choice(self, ch) -> None:
        mode_y = self._choice(ch)[1]
        label = "/".join(m.name for m in ch.syms)
        picked = []
        for m in ch.syms:
            vis = self._shown_y[m.name]
            picked.append((vis, self.and_([vis, self.tv(m)[1]])))
        self._add(
            label,
            "choice: at most one visible member is y",
            [[neg(a[1]), neg(b[1])] for a, b in itertools.combinations(picked, 2)],
        )
        if not ch.is_optional:
            self._add(
                label,
                "choice: some visible member is y",
                [[neg(mode_y), neg(self.or_(v for v, _ in picked))] + [p for _, p in picked]],
            )

    # ---- reading configurations ------------------------------------------------------------
    def literal(self, symbol: str, value: str) -> Lit:
        """The literal of `symbol` having `value` (y, m, ym, n, not-y); may add gates."""
        sym = self.kconf.syms.get(symbol)
        m, y = self.tv(sym) if sym is not None else N
        table = {"y": y, "m": self.and_([m, neg(y)]), "ym": m, "n": neg(m), "not-y": neg(y)}
        if value not in table:
            raise ValueError(f"bad requirement value {value!r} for {symbol}")
        return table[value]

    def assumptions_for(self, config: Mapping[str, str]) -> List[int]:
        """The full assignment of the primary variables for `config` (absent symbols are n)."""
        out = []
        for name, tri in self.symbols.items():
            v = config.get(name, "n")
            out.append(self.var(name, "y") * (1 if v == "y" else -1))
            if tri:
                out.append(self.var(name, "m") * (1 if v == "m" else -1))
        return out

    def value_of(self, model: Sequence[int], symbol: str) -> str:
        """y/m/n of `symbol` in a solver model (a list of literals indexed by variable)."""

        def true(v: int) -> bool:
            return model[v - 1] > 0 if len(model) >= v and abs(model[v - 1]) == v else v in model

        if true(self.var(symbol, "y")):
            return "y"
        return "m" if self.symbols[symbol] and true(self.var(symbol, "m")) else "n"

    def check(self, config: Mapping[str, str]) -> List[str]:
        """The constraints `config` violates, one readable line each; [] when it is valid."""
        val: Dict[int, bool] = {abs(a): a > 0 for a in self.assumptions_for(config)}
        val[self._false] = False
        for gate, inputs in self._defs:
            val[gate] = all(val[abs(x)] == (x > 0) for x in inputs)
        out = []
        for symbol, text, first, end in self.constraints:
            if not all(
                any(val.get(abs(x), False) == (x > 0) for x in c) for c in self.clauses[first:end]
            ):
                got = ", ".join(
                    f"{s}={config.get(s, 'n')}"
                    for s in symbol.split("/")
                    if config.get(s, "n") != "n" or "/" not in symbol
                )
                out.append(f"{symbol}: {text} (got {got or 'none'})")
        return out


def _number(s: str, typ: int) -> Optional[int]:
    """`expr_parse_string` of Linux 6.1: the number `s` stands for, None for a plain string."""
    K = _kconfiglib()
    if typ in (K.BOOL, K.TRISTATE):
        return {"n": 0, "m": 1, "y": 2}.get(s, -1)
    if not s or s[-1] not in "0123456789abcdefABCDEF":
        return None
    try:
        if typ == K.INT:
            return int(s, 10)
        if typ == K.HEX:
            return int(s, 16)
        return int(s, 8) if len(s) > 1 and s[0] == "0" and s.isdigit() else int(s, 0)
    except ValueError:
        return None


def _compare(rel, t1: int, s1: str, t2: int, s2: str) -> bool:
    """Kconfig's relation `s1 rel s2` for operand types t1, t2 (`expr_calc_value`)."""
    K = _kconfiglib()
    n1, n2 = (None, None) if t1 == t2 == K.STRING else (_number(s1, t1), _number(s2, t2))
    a, b = (s1, s2) if n1 is None or n2 is None else (n1, n2)
    c = (a > b) - (a < b)
    return {
        K.EQUAL: c == 0,
        K.UNEQUAL: c != 0,
        K.LESS: c < 0,
        K.LESS_EQUAL: c <= 0,
        K.GREATER: c > 0,
        K.GREATER_EQUAL: c >= 0,
    }[rel]
