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
    plan_on_verified_baseline,
    restricted,
    verified_baseline_summary,
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


def test_record_names_the_failing_try_bisection_inferred_a_kept_item_from():
    """[A, B] failed, then [A] alone passed: bisection keeps B without a try of its own, and the
    proof is the failing try, since everything else it left out went."""
    groups = [SoftGroup("a", ("A",), 1), SoftGroup("b", ("B",), 1), SoftGroup("c", ("C",), 1)]
    tries = [
        {"try": 1, "new": ["A", "B"], "new_groups": ["a", "b"], "passed": False},
        {"try": 2, "new": ["A"], "new_groups": ["a"], "passed": True},
        {"try": 3, "new": ["B", "C"], "new_groups": ["b", "c"], "passed": False},
    ]
    record = minimisation_record("traced", groups, tries, frozenset({"A"}), True, 3, 1.0)
    assert record["kept"] == [
        {"item": "B", "proved_by_try": 1},
        {"item": "C", "proved_by_try": None},  # try 3 also left out B, which stayed
    ]


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


def test_plan_starts_from_what_is_already_removed():
    groups = [SoftGroup("net", ("NET", "INET"), 9), SoftGroup("tty", ("TTY",), 3)]
    (removed, _), tried = drive(plan(groups, frozenset({"X"})), needs({"TTY"}))
    assert removed == {"X", "NET", "INET"}
    assert all("X" in c for c in tried)


def test_restricted_keeps_order_and_drops_empty_groups():
    groups = [SoftGroup("a", ("A1", "A2"), 5), SoftGroup("b", ("B1",), 4)]
    assert restricted(groups, {"A2"}) == [SoftGroup("a", ("A2",), 5)]
    assert restricted(groups, set()) == []


def test_on_a_verified_baseline_one_try_when_the_apps_need_none_of_its_removals():
    groups = [
        SoftGroup("net", ("NET", "INET"), 9),
        SoftGroup("tty", ("TTY", "VT"), 7),
        SoftGroup("futex", ("FUTEX",), 2),
    ]
    # the baseline's boot needed TTY and left out NET, INET and VT; FUTEX (an app's) is new
    gen = plan_on_verified_baseline(groups, {"NET", "INET", "VT"}, {"NET", "INET", "VT", "TTY"})
    (removed, _), tried = drive(gen, needs({"FUTEX"}))
    assert tried[0] == {"NET", "INET", "VT"}  # the whole delta first
    assert removed == {"NET", "INET", "VT"}
    assert not any("TTY" in c for c in tried), "what the baseline's boot needed is not retried"
    assert len(tried) == 2  # the delta, then FUTEX alone


def test_on_a_verified_baseline_what_an_app_needs_is_bisected_back():
    groups = [SoftGroup(f"g{i}", (f"S{i}",), 10 - i) for i in range(8)]
    baseline_removed = {f"S{i}" for i in range(8)}
    gen = plan_on_verified_baseline(groups, baseline_removed, baseline_removed)
    (removed, kept), tried = drive(gen, needs({"S5"}))
    assert removed == baseline_removed - {"S5"} and kept == ["g5"]
    assert len(tried) <= 1 + 2 * 3


def test_the_record_marks_what_the_verified_baseline_kept():
    groups = [SoftGroup("g", ("A", "B"), 2)]
    baseline = {
        "address": "x:b",
        "considered": ["A", "B"],
        "removed": ["A"],
        "complete": True,
        "cost": {"tries": 3},
    }
    record = minimisation_record("baseline", groups, [], frozenset({"A"}), False, 5, 1.0, baseline)
    assert record["kept"] == [{"item": "B", "proved_by_try": None, "by_baseline": True}]
    assert record["verified_baseline"]["address"] == "x:b"


def test_the_report_says_which_verified_baseline_a_kernel_started_from():
    from kernel_rules.domain.compose.report import _minimisation_summary, _render_minimisation

    # the baseline's own record: it considered A and B, left out A, and B failed alone (try 2)
    b_groups = [SoftGroup("g", ("A", "B"), 2)]
    b_tries = [
        {"try": 1, "left_out": 2, "new": ["A", "B"], "new_groups": ["g"], "passed": False},
        {"try": 2, "left_out": 2, "new": ["B"], "new_groups": [], "passed": False},
        {"try": 3, "left_out": 1, "new": ["A"], "new_groups": [], "passed": True},
    ]
    b_tries[1]["reason"] = "FAIL x:b (boot check): the guest never reached its init\nno console"
    b_record = minimisation_record("baseline", b_groups, b_tries, frozenset({"A"}), False, 3, 9.0)
    b_record["baseline"] = "x:b"
    baseline = verified_baseline_summary(b_record)
    assert baseline["considered"] == ["A", "B"] and baseline["removed"] == ["A"]
    assert baseline["kept"] == [{"item": "B", "proved_by_try": 2, "failure": b_tries[1]["reason"]}]

    groups = [SoftGroup("g", ("A", "B", "C"), 3)]
    tries = [{"try": 1, "left_out": 1, "new": ["A"], "new_groups": [], "passed": True}]
    tries[0].update(enabled=300, text=10, objects_compiled=5, build_seconds=9.0)
    record = minimisation_record("traced", groups, tries, frozenset({"A"}), True, 1, 2.0, baseline)
    md = "\n".join(_render_minimisation(_minimisation_summary(record)))
    assert "Started from the verified baseline `x:b`" in md
    assert "left out 1 of its 2 soft requirements in 3 tries" in md
    assert "its `minimise_max_tries` ran out" not in md
    assert "| `B` | baseline try 2 | no console |" in md and "| `C` | - |" in md


def test_tries_that_compose_one_configuration_cost_one_build_and_boot():
    groups = [SoftGroup("g", ("A", "B"), 2)]
    tries = [
        {"try": 1, "new": ["A", "B"], "passed": False, "enabled": 9, "config_sha256": "c1"},
        {"try": 2, "new": ["A"], "passed": True, "enabled": 9, "config_sha256": "c1"},
        {"try": 3, "new": ["B"], "passed": False, "enabled": 8, "config_sha256": "c2"},
    ]
    for t, (objects, seconds) in zip(tries, ((100, 50.0), (100, 50.0), (7, 3.0))):
        t.update(objects_compiled=objects, build_seconds=seconds)
    cost = minimisation_record("traced", groups, tries, frozenset({"A"}), False, 5, 1.0)["cost"]
    assert (cost["tries"], cost["builds"], cost["boots"]) == (3, 2, 2)
    assert (cost["objects_compiled"], cost["build_seconds"]) == (107, 53.0)
