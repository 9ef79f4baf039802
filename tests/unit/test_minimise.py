"""minimise: the bisection over soft requirement groups, against oracles whose answer is known."""

from __future__ import annotations

import random
from typing import Callable, FrozenSet, List, Set, Tuple

import pytest

from kernel_rules.domain.compose.minimise import (
    SoftGroup,
    groups_document,
    groups_from_document,
    minimisation_record,
    plan,
    search,
    soft_groups,
    unused_syscall_gates,
    whole_groups,
)


def drive(
    gen, passes: Callable[[FrozenSet[str]], bool]
) -> Tuple[FrozenSet[str], List[FrozenSet[str]]]:
    """Run a search generator against an oracle; returns (result, candidates tried)."""
    tried: List[FrozenSet[str]] = []
    try:
        candidate = next(gen)
        while True:
            tried.append(candidate)
            candidate = gen.send(passes(candidate))
    except StopIteration as stop:
        return stop.value, tried


def needs(needed: Set[str]) -> Callable[[FrozenSet[str]], bool]:
    """An oracle: a candidate passes unless it removes one of `needed`."""
    return lambda removed: not (needed & removed)


@pytest.mark.parametrize("n", [1, 2, 7, 16, 33])
def test_search_removes_exactly_what_is_not_needed(n):
    items = [f"S{i}" for i in range(n)]
    rng = random.Random(n)
    for k in range(0, n + 1, max(1, n // 4)):
        needed = set(rng.sample(items, k))
        removed, tried = drive(search(items), needs(needed))
        assert removed == frozenset(items) - needed
        assert all(c >= frozenset() for c in tried)
        assert len(set(tried)) == len(tried), "no candidate is tried twice"


def test_search_one_try_when_nothing_is_needed_and_few_when_one_is():
    items = [f"S{i}" for i in range(32)]
    assert len(drive(search(items), needs(set()))[1]) == 1
    removed, tried = drive(search(items), needs({"S19"}))
    assert removed == frozenset(items) - {"S19"}
    assert len(tried) <= 2 * 5 + 1  # a bisection path, not one try per item


def test_search_result_is_one_minimal():
    items = [f"S{i}" for i in range(12)]

    # a needed pair: removing both A and B fails, either alone passes (an alternative)
    def oracle(removed):
        return not ({"S3", "S8"} <= removed) and "S5" not in removed

    removed, _ = drive(search(items), oracle)
    kept = frozenset(items) - removed
    for item in kept:
        assert not oracle(removed | {item}), f"{item} could still be removed"


def test_search_starts_from_what_is_already_removed():
    removed, tried = drive(search(["A", "B"], frozenset({"X"})), needs({"B"}))
    assert removed == {"X", "A"}
    assert all("X" in c for c in tried)


def test_plan_searches_groups_then_members_of_kept_groups():
    groups = [
        SoftGroup("net", ("NET", "INET", "PACKET"), 30),
        SoftGroup("tty", ("TTY",), 5),
        SoftGroup("input", ("INPUT", "SERIO"), 9),
    ]
    (removed, kept_groups), tried = drive(plan(groups), needs({"NET", "TTY"}))
    assert removed == {"INET", "PACKET", "INPUT", "SERIO"}
    assert set(kept_groups) == {"net", "tty"}
    assert all(isinstance(c, frozenset) for c in tried)


def test_soft_groups_order_and_document_round_trip():
    files = {
        "NET": "net/Kconfig",
        "INET": "net/Kconfig",
        "TTY": "drivers/tty/Kconfig (apps)",
        "IPV6": "net/ipv6/Kconfig",
    }
    weights = {"NET": 10, "INET": 30, "TTY": 100, "IPV6": 20}
    groups = soft_groups(files, files.get, weights.get, later=lambda g: int(g.endswith("(apps)")))
    assert [g.name for g in groups] == [
        "net/Kconfig",
        "net/ipv6/Kconfig",
        "drivers/tty/Kconfig (apps)",
    ]
    assert groups[0].symbols == ("INET", "NET") and groups[0].weight == 40
    assert groups_from_document(groups_document(groups)) == groups
    with pytest.raises(ValueError):
        groups_from_document({"format": "something else", "groups": []})


def test_record_names_the_try_that_proved_each_kept_item():
    groups = [SoftGroup("g", ("A", "B"), 2)]
    tries = [
        {"try": 1, "new": ["A", "B"], "passed": False},
        {"try": 2, "new": ["A"], "passed": True, "enabled": 3, "objects_compiled": 4},
        {"try": 3, "new": ["B"], "passed": False, "enabled": 4, "reason": "FAIL ipc"},
    ]
    record = minimisation_record("traced", groups, tries, frozenset({"A"}), False, 10, 1.0)
    assert record["kept"] == [{"item": "B", "proved_by_try": 3}]
    by_group = minimisation_record(
        "traced",
        [SoftGroup("g", ("A", "B"), 2)],
        [{"try": 1, "new": ["A", "B"], "new_groups": ["g"], "passed": False}],
        frozenset(),
        True,
        1,
        1.0,
    )
    assert by_group["kept"] == [
        {"item": "A", "proved_by_try": 1},
        {"item": "B", "proved_by_try": 1},
    ]
    assert record["complete"] and record["cost"]["builds"] == 2
    assert record["groups"][0]["removed"] is False


def test_whole_groups_names_groups_only_when_left_out_whole():
    groups = [SoftGroup("net", ("NET", "INET"), 2), SoftGroup("tty", ("TTY",), 1)]
    assert whole_groups(groups, ["NET", "INET", "TTY"], frozenset({"NET", "INET", "TTY"})) == [
        "net",
        "tty",
    ]
    assert whole_groups(groups, ["INET"], frozenset({"INET", "TTY"})) == []


TABLE = {
    "syscalls": {
        "io_setup": {"requires": {"AIO": "y"}},
        "io_submit": {"requires": {"AIO": "y"}},
        "socket": {"requires": {"NET": "y"}},
        "socketpair": {"requires": {"NET": "y"}},
        "epoll_create1": {"requires": {"EPOLL": "y"}},
        "msgget": {"requires": {"SYSVIPC": "y"}},
        "getpid": {"requires": {}},
        "mmap": {"requires": {"NOMMU_ONLY": "n"}},
    }
}


def test_unused_syscall_gates_are_options_gating_only_syscalls_nobody_makes():
    used = {"socketpair", "epoll_create1", "getpid"}
    assert unused_syscall_gates(TABLE, used) == {"AIO", "SYSVIPC"}
    # one used syscall of an option keeps it out of the set; `n` facts gate nothing
    assert unused_syscall_gates(TABLE, used | {"io_submit"}) == {"SYSVIPC"}
    assert unused_syscall_gates({}, used) == frozenset()


def test_tailor_reads_the_unused_syscall_gates_from_the_apps_syscalls(tmp_path):
    import argparse
    import json

    from kernel_rules.domain.compose import tailor

    (tmp_path / "table.json").write_text(json.dumps(TABLE))
    (tmp_path / "a.json").write_text(json.dumps({"static": ["socketpair"], "traced": ["getpid"]}))
    (tmp_path / "b.json").write_text(json.dumps({"static": [], "traced": ["epoll_create1"]}))
    args = argparse.Namespace(
        syscall_table=str(tmp_path / "table.json"),
        static_syscalls=[f"//a:a={tmp_path / 'a.json'}", f"//b:b={tmp_path / 'b.json'}"],
    )
    assert tailor._unused_syscall_gates(args) == {"AIO", "SYSVIPC"}
    args.syscall_table = None
    assert tailor._unused_syscall_gates(args) == frozenset()
