"""Check that every value a fragment requested survived into the final `.config`.

The kernel's `olddefconfig` silently drops requests it cannot honour (an unmet `depends on`, a
symbol that does not exist, a choice that went another way). `find_violations()` compares the
merged requests with the final values; `explain()` asks a kconfiglib model of the same tree *why*
(only called when something is wrong: parsing the Kconfig tree costs ~2 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

from kernel_rules.domain.kconfig.fragments import Request


@dataclass(frozen=True)
class Violation:
    """A request that did not survive: `got` is the final value ("n" when absent)."""

    request: Request
    got: str
    reason: str = ""

    def message(self) -> str:
        r = self.request
        text = f"{r.origin}: CONFIG_{r.symbol}: requested {r.value}, got {self.got}"
        return f"{text} ({self.reason})" if self.reason else text


def _same(requested: str, got: str) -> bool:
    if requested == got:
        return True
    try:  # 0x10 == 16, and the kernel may rewrite hex case
        return int(requested, 0) == int(got, 0)
    except ValueError:
        return False


def find_violations(requests: Mapping[str, Request], final: Mapping[str, str]) -> List[Violation]:
    """Requests whose symbol's final value differs; absent symbols count as `n`."""
    return [
        Violation(req, final.get(sym, "n"))
        for sym, req in sorted(requests.items(), key=lambda kv: kv[1].origin)
        if not _same(req.value, final.get(sym, "n"))
    ]


def explain(violations: List[Violation], kconf) -> List[Violation]:
    """Attach a reason to each violation from `kconf` (a kconfiglib.Kconfig with the final
    `.config` loaded): unknown symbol, unmet dependencies, selected by, no prompt, range."""
    import kconfiglib as kl

    explained = []
    for v in violations:
        sym = kconf.syms.get(v.request.symbol)
        explained.append(Violation(v.request, v.got, _reason(kl, kconf, sym, v.request.value)))
    return explained


def _unmet_terms(kl, expr) -> List[str]:
    return [
        kl.expr_str(t) + _values_of(kl, t)
        for t in kl.split_expr(expr, kl.AND)
        if kl.expr_value(t) == 0
    ]


def _values_of(kl, expr) -> str:
    syms = [s for s in kl.expr_items(expr) if isinstance(s, kl.Symbol) and s.nodes]
    if not syms:
        return ""
    return " [" + ", ".join(f"{s.name}={s.str_value or 'n'}" for s in syms) + "]"


def _reason(kl, kconf, sym, requested: str) -> str:
    if sym is None or not sym.nodes:
        return "unknown symbol: no Kconfig file of this source tree and architecture defines it"
    if sym.orig_type in (kl.BOOL, kl.TRISTATE):
        wants_on = requested in ("y", "m")
        if wants_on:
            unmet = _unmet_terms(kl, sym.direct_dep)
            if unmet:
                return "unmet dependency: " + " && ".join(unmet)
            if requested == "m" and kconf.modules.tri_value == 0:
                return "=m needs CONFIG_MODULES=y"
            if requested == "m" and sym.orig_type == kl.BOOL:
                return "bool symbol cannot be =m"
            if not any(node.prompt for node in sym.nodes):
                return "no prompt: it can only be enabled by `select` or a default"
            if sym.choice is not None and sym.choice.selection is not sym:
                chosen = sym.choice.selection.name if sym.choice.selection else "none"
                return f"another member of its choice won: {chosen}"
            return "visible but not assignable with the other values of this configuration"
        selectors = [
            kl.expr_str(t) for t in kl.split_expr(sym.rev_dep, kl.OR) if kl.expr_value(t) != 0
        ]
        if selectors:
            return "selected by " + " || ".join(selectors)
        if sym.choice is not None:
            return "member of a choice that needs one member enabled"
        if not any(node.prompt for node in sym.nodes):
            return "no prompt: its default turns it on and it cannot be turned off"
        return "forced on by another value of this configuration"
    if sym.ranges:
        return "value outside its allowed range or not visible: " + ", ".join(
            f"{kl.expr_str(lo)}..{kl.expr_str(hi)}" for lo, hi, _cond in sym.ranges
        )
    unmet = _unmet_terms(kl, sym.direct_dep)
    return "unmet dependency: " + " && ".join(unmet) if unmet else "value not accepted"


def format_report(violations: List[Violation], header: Optional[str] = None) -> str:
    lines = [header] if header else []
    lines += [f"  {v.message()}" for v in violations]
    return "\n".join(lines)


def final_values(text: str) -> Dict[str, str]:
    """{symbol: value} of a final `.config` text (comments other than `is not set` ignored)."""
    from kernel_rules.domain.kconfig.fragments import parse_config

    return parse_config(text)
