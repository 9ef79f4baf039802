"""Verified minimisation: which soft requirements can go, decided by booting and running the apps.

A composed configuration keeps every traced requirement. Many of the baseline's are *soft*: code
that ran only because it was built in (initcalls of drivers for absent devices, protocols nobody
opens). The oracle for "needed" is the product's own check: build the candidate, boot it on the
baseline's machine and run every app's workload. This module holds the search, without any
build or boot of its own:

- `soft_groups` gathers the soft requirements into groups (by the Kconfig file that defines the
  symbol: `net/ipv6/Kconfig`, `drivers/tty/serial/8250/Kconfig`, ...), heaviest first.
  Soft requirements an app saw whose options gate only syscalls no app can make
  (`unused_syscall_gates`) come first: they are the likeliest to go.
- `search` is a generator: it yields candidate sets of removed items and receives each one's
  verdict (True: the candidate passed). It bisects: a chunk whose removal passes is removed
  whole; a chunk whose removal fails is split in two and each half is tried; a single item whose
  removal fails is needed. When the first half of a failing chunk was removed, removing the
  second as well is known to fail (the whole chunk failed), so it is split without a try. The
  result is 1-minimal over the items (removing any one kept item fails), under the assumption
  that removing more never makes a failing candidate pass.
- `plan` runs the search over groups, then over the members of the kept groups that have
  more than one.
- `plan_on_verified_baseline` is a kernel's plan on top of its verified baseline (the same plan
  run once per baseline with its boot check): first the baseline's removals among the kernel's
  soft requirements, all at once and bisected back where the apps fail, then what the baseline
  did not decide.

A try is named by the sorted items it removes; the caller caches verdicts by that name (in this
product: Pants' process cache holds every compose, build and app check, so a rerun repeats none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import (
    Callable,
    Dict,
    FrozenSet,
    Generator,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

FORMAT = "kernel_rules/soft-requirements@1"
RECORD_FORMAT = "kernel_rules/minimisation@1"


@dataclass(frozen=True)
class SoftGroup:
    """Soft requirements on the symbols defined in one Kconfig file; `weight` is their size."""

    name: str
    symbols: Tuple[str, ...]
    weight: int


def soft_groups(
    items: Iterable[str],
    group_of: Callable[[str], str],
    weight_of: Callable[[str], int],
    later: Callable[[str], int] = lambda g: 0,
) -> List[SoftGroup]:
    """The soft items grouped by `group_of` (e.g. the Kconfig file defining the symbol), ordered
    by `later(name)` (e.g. 0 for items seen only during kernel initialisation, 2 for those an
    app saw too: likely-needed groups are then bisected together), then heaviest first (ties by
    name); each group's items heaviest first."""
    by_file: Dict[str, List[str]] = {}
    for s in sorted(set(items)):
        by_file.setdefault(group_of(s), []).append(s)
    groups = [
        SoftGroup(
            name,
            tuple(sorted(syms, key=lambda s: (-weight_of(s), s))),
            sum(weight_of(s) for s in syms),
        )
        for name, syms in by_file.items()
    ]
    return sorted(groups, key=lambda g: (later(g.name), -g.weight, g.name))


def unused_syscall_gates(table: Mapping, used: Iterable[str]) -> FrozenSet[str]:
    """The symbols that gate at least one syscall of `table` (a `syscall-kconfig@1` document:
    a symbol its `requires` names on) and none of the `used` syscalls (what the apps' binaries
    can make or a trace saw). An app can reach such an option's code only through other paths
    (AIO and SYSVIPC at process exit): a likely removal, so the search tries it early."""
    gates: Dict[str, set] = {}
    for name, row in (table.get("syscalls") or {}).items():
        for symbol, value in (row.get("requires") or {}).items():
            if value != "n":
                gates.setdefault(symbol, set()).add(name)
    wanted = set(used)
    return frozenset(s for s, names in gates.items() if not names & wanted)


def groups_document(groups: Sequence[SoftGroup]) -> dict:
    return {
        "format": FORMAT,
        "groups": [
            {"name": g.name, "symbols": list(g.symbols), "weight": g.weight} for g in groups
        ],
    }


def groups_from_document(doc: Mapping) -> List[SoftGroup]:
    if doc.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    return [SoftGroup(g["name"], tuple(g["symbols"]), int(g["weight"])) for g in doc["groups"]]


def search(
    items: Sequence[str], removed: FrozenSet[str] = frozenset()
) -> Generator[FrozenSet[str], bool, FrozenSet[str]]:
    """Yields sets of removed items to try (always a superset of `removed`), receives whether
    each passed; returns the final removed set (see the module docstring)."""
    current = frozenset(removed)

    def visit(chunk: Tuple[str, ...], known_to_fail: bool):
        nonlocal current
        if not chunk:
            return
        if not known_to_fail:
            candidate = current | frozenset(chunk)
            if (yield candidate):
                current = candidate
                return
        if len(chunk) == 1:
            return  # needed
        half = (len(chunk) + 1) // 2
        first, second = chunk[:half], chunk[half:]
        before = current
        yield from visit(first, False)
        yield from visit(second, current != before and set(first) <= current)

    yield from visit(tuple(items), False)
    return current


def symbols_of(groups: Sequence[SoftGroup], names: Iterable[str]) -> FrozenSet[str]:
    wanted = set(names)
    return frozenset(s for g in groups if g.name in wanted for s in g.symbols)


def whole_groups(
    groups: Sequence[SoftGroup], new: Iterable[str], candidate: FrozenSet[str]
) -> List[str]:
    """The names of the groups the `new` items belong to, when `candidate` leaves each of those
    groups out whole; [] when the new items are members of a partly kept group."""
    names = {g.name for g in groups if set(g.symbols) & set(new)}
    if all(set(g.symbols) <= candidate for g in groups if g.name in names):
        return sorted(names)
    return []


def plan(
    groups: Sequence[SoftGroup], removed: FrozenSet[str] = frozenset()
) -> Generator[FrozenSet[str], bool, Tuple[FrozenSet[str], List[str]]]:
    """The whole minimisation as one generator of removed-symbol sets (each a superset of
    `removed`, what is already known to go): first over groups, then over the members of each
    kept group with more than one symbol. Returns (removed symbols, kept groups)."""
    already = frozenset(removed)
    removed_groups = yield from _mapped(
        search([g.name for g in groups]), lambda names: already | symbols_of(groups, names)
    )
    removed = already | symbols_of(groups, removed_groups)
    kept = [g for g in groups if g.name not in removed_groups]
    for g in kept:
        if len(g.symbols) > 1:
            removed = yield from search(g.symbols, removed)
    return removed, [g.name for g in kept]


def restricted(groups: Sequence[SoftGroup], items: Iterable[str]) -> List[SoftGroup]:
    """`groups` with only the symbols in `items` (same order; empty groups dropped; weights
    kept, they only order the search)."""
    wanted = set(items)
    out = []
    for g in groups:
        symbols = tuple(s for s in g.symbols if s in wanted)
        if symbols:
            out.append(SoftGroup(g.name, symbols, g.weight))
    return out


def plan_on_verified_baseline(
    groups: Sequence[SoftGroup], baseline_removed: Iterable[str], baseline_considered: Iterable[str]
) -> Generator[FrozenSet[str], bool, Tuple[FrozenSet[str], List[str]]]:
    """A kernel's minimisation on top of its verified baseline (the baseline's soft requirements
    its boot check decided: `baseline_considered`, of which `baseline_removed` could go).
    First the apps' delta: the baseline's removals among this kernel's soft `groups`, all at
    once in the first try (one build and boot when the apps need none of them), bisected back
    where they fail. Then the soft items the baseline did not decide (what apps or the
    user-space boot ran, in `traced` mode), on top of what the first step removed. Items the
    baseline's boot needed are not tried again."""
    soft = {s for g in groups for s in g.symbols}
    removed, kept = yield from plan(restricted(groups, soft & set(baseline_removed)))
    rest = soft - set(baseline_considered)
    removed, kept_rest = yield from plan(restricted(groups, rest), removed)
    return removed, kept + kept_rest


def _mapped(gen: Generator, f: Callable) -> Generator:
    """`gen` with every yielded value passed through `f` (verdicts go back unchanged)."""
    try:
        value = next(gen)
        while True:
            value = gen.send((yield f(value)))
    except StopIteration as stop:
        return stop.value


def minimisation_record(
    mode: str,
    groups: Sequence[SoftGroup],
    tries: Sequence[Mapping],
    removed: FrozenSet[str],
    exhausted: bool,
    budget: int,
    seconds: float,
    baseline: Optional[Mapping] = None,
) -> dict:
    """The `minimise.json` document: every try in order ({try, left_out, new (the items this try
    left out beyond the last passing one), new_groups, passed, enabled, bzImage, text, reason}),
    what was removed, what was kept and the try that proved it (the failing try that left out
    only it, or only its group, or it and items later removed; none when the tries ran out
    before it was decided), and the cost
    (builds and boots of distinct configurations: tries that compose one configuration share its
    cached build and boot; `build_seconds` as measured when each build ran, cached or not).
    `baseline`: the verified baseline the tries started from (`verified_baseline_summary`); a
    kept item its boot check needed is marked `by_baseline`."""
    proof: Dict[str, int] = {}  # the failing try that left out only this item, or its group
    by_size = sorted(tries, key=lambda t: (len(t["new"]), t["try"]))
    for t in by_size:
        if not t["passed"] and (len(t["new"]) == 1 or len(t.get("new_groups") or []) == 1):
            for item in t["new"]:
                proof.setdefault(item, t["try"])
    # Bisection infers the rest: a failing try that left out this item and others that a later
    # try removed without a failure (leaving out more fails too, as the search assumes).
    for t in by_size:
        if not t["passed"]:
            for item in t["new"]:
                if item not in removed and set(t["new"]) - {item} <= removed:
                    proof.setdefault(item, t["try"])
    kept = [item for g in groups for item in g.symbols if item not in removed]
    # Two tries that compose the same configuration share one build and one boot (both cached).
    built = list({t.get("config_sha256") or t["try"]: t for t in tries if "enabled" in t}.values())
    baseline_kept = set(baseline["considered"]) - set(baseline["removed"]) if baseline else set()
    return {
        "format": RECORD_FORMAT,
        "mode": mode,
        "groups": [
            {
                "name": g.name,
                "symbols": list(g.symbols),
                "weight": g.weight,
                "removed": all(i in removed for i in g.symbols),
            }
            for g in groups
        ],
        "tries": list(tries),
        "removed": sorted(removed),
        "kept": [
            {
                "item": i,
                "proved_by_try": proof.get(i),
                **({"by_baseline": i in baseline_kept} if baseline else {}),
            }
            for i in sorted(kept)
        ],
        "verified_baseline": dict(baseline) if baseline else None,
        "complete": not exhausted,
        "max_tries": budget,
        "cost": {
            "tries": len(tries),
            "builds": len(built),
            "boots": len(built),
            "objects_compiled": sum(t.get("objects_compiled") or 0 for t in built),
            "build_seconds": round(sum(t.get("build_seconds") or 0 for t in built), 1),
            "seconds_this_run": round(seconds, 1),
        },
    }


def verified_baseline_summary(record: Mapping) -> dict:
    """What a kernel's `minimise.json` says of the verified baseline it started from, from that
    baseline's `verified-baseline.json` record: its address, what it considered and removed,
    whether it is complete, its cost, and for each requirement its boot needed the failing try
    that proved it and that failure's tail (the boot check's console)."""
    failing = {t["try"]: t for t in record["tries"] if not t["passed"]}
    return {
        "address": record["baseline"],
        "considered": sorted(i for g in record["groups"] for i in g["symbols"]),
        "removed": list(record["removed"]),
        "complete": record["complete"],
        "cost": record["cost"],
        "kept": [
            {
                "item": k["item"],
                "proved_by_try": k["proved_by_try"],
                "failure": (failing.get(k["proved_by_try"]) or {}).get("reason", "")[-600:] or None,
            }
            for k in record["kept"]
        ],
    }
