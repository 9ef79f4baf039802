"""The syscall probe's pure logic: its output lines (domain.guest.protocol.parse_probe), probe.json
(domain.guest.probe.probe_document) and the verified table and resources of a tailored kernel
against its trace kernel (domain.syscalls.verified)."""

from __future__ import annotations

from pathlib import Path

from kernel_rules.domain.guest import protocol
from kernel_rules.domain.guest.probe import probe_document, workload_script
from kernel_rules.domain.syscalls.verified import absent_numbers, compare, resources

REPO = Path(__file__).resolve().parents[2]

OUTPUT = """\
KR_PROBE_SYSCALL 0 ret -9
KR_PROBE_SYSCALL 1 ret -38
KR_PROBE_SYSCALL 2 signal 11
KR_PROBE_SYSCALL 3 exit 255
KR_PROBE_SYSCALL 4 timeout
a line the probe did not write
KR_PROBE_BENCH spin 0 100 2000
KR_PROBE_BENCH spin 1 100 1000
KR_PROBE_BENCH getpid 0 1000000 5000
KR_PROBE_BENCH getpid 1 1000000 4000
KR_PROBE_BENCH walk 0 20200 9000
KR_PROBE_DONE
"""

CONSOLE = "KERNEL_RULES_INIT_OK kernel 6.1 uptime 0.98\nKR_MEMINFO 248824 237532\n"
RUN = {"passed": True, "reason": "", "boot_seconds": 0.98, "seconds": 9.5}


def test_parse_probe_reads_every_outcome_and_benchmark_round():
    out = protocol.parse_probe(OUTPUT.replace("\n", "\r\n"))
    assert out.done
    assert out.syscalls == {
        0: ("ret", -9),
        1: ("ret", -38),
        2: ("signal", 11),
        3: ("exit", 255),
        4: ("timeout", None),
    }
    assert out.bench["getpid"] == [(1000000, 5000), (1000000, 4000)]
    assert not protocol.parse_probe(OUTPUT.replace("KR_PROBE_DONE", "")).done


def test_the_c_probe_prints_the_protocol_markers():
    source = (REPO / "kernel_rules/domain/guest/syscall_probe.c").read_text()
    for marker in (protocol.PROBE_SYSCALL, protocol.PROBE_BENCH, protocol.PROBE_DONE):
        assert f'"{marker} ' in source or f'"{marker}\\n"' in source, marker
    assert workload_script(460, 5) == "#!/bin/sh\nexec /usr/bin/syscall_probe 460 5\n"


def _doc(label: str, output: str, last: int = 4) -> dict:
    return probe_document(label, "tcg", RUN, output, CONSOLE, last)


def test_only_enosys_counts_as_absent():
    doc = _doc("k", OUTPUT)
    assert doc["passed"] and doc["format"] == "kernel_rules/syscall-probe@1"
    assert absent_numbers(doc) == [1]  # a signal, an exit or a timeout means it is there
    assert doc["meminfo"] == {"total_kb": 248824, "available_kb": 237532, "used_kb": 11292}
    assert doc["bench"]["spin"] == {"count": 100, "rounds_ns": [2000, 1000], "best_ns": 1000}


def test_an_incomplete_probe_fails_with_a_reason():
    assert "KR_PROBE_DONE" in _doc("k", OUTPUT.replace("KR_PROBE_DONE", ""))["reason"]
    missing = _doc("k", OUTPUT, last=6)
    assert not missing["passed"] and "[5, 6]" in missing["reason"]
    failed = probe_document(
        "k", "tcg", {**RUN, "reason": "the guest never reached its init"}, "", "", 4
    )
    assert not failed["passed"] and failed["meminfo"] is None
    assert failed["reason"] == "the guest never reached its init"


TABLE = {
    "syscalls": {
        "read": {"number": 0, "condition": "true", "formula": True},
        "timerfd_create": {
            "number": 1,
            "condition": "TIMERFD",
            "formula": ["sym", "TIMERFD", "ym"],
        },
        "exit": {"number": 3, "condition": "true", "formula": True},
        "pause": {"number": 4, "condition": "true", "formula": True},
        "fhandle": {"number": 2, "condition": "FHANDLE", "formula": ["sym", "FHANDLE", "ym"]},
    }
}


def test_compare_lists_what_the_tailored_kernel_removed():
    trace = _doc("trace", OUTPUT.replace("KR_PROBE_SYSCALL 1 ret -38", "KR_PROBE_SYSCALL 1 ret 3"))
    tailored = _doc(
        "tailored", OUTPUT.replace("KR_PROBE_SYSCALL 2 signal 11", "KR_PROBE_SYSCALL 2 ret -38")
    )
    c = compare(
        tailored, trace, TABLE, {"TIMERFD": "n", "FHANDLE": "y"}, {"TIMERFD": "y", "FHANDLE": "y"}
    )
    assert c["numbers_probed"] == 5
    assert c["tailored"]["present"] == 3 and c["trace_kernel"]["present"] == 5
    assert [x["name"] for x in c["tailored"]["absent"]] == ["timerfd_create", "fhandle"]
    assert [(x["name"], x["condition"]) for x in c["removed"]] == [
        ("timerfd_create", "TIMERFD"),
        ("fhandle", "FHANDLE"),
    ]
    assert c["added"] == [] and c["absent_on_both"] == []
    # FHANDLE=y, so the table says fhandle is there: the probe disagrees
    assert [
        (d["kernel"], d["name"], d["table_says"], d["probe_says"]) for d in c["table_disagreements"]
    ] == [("tailored", "fhandle", "present", "absent")]


def test_resources_give_rom_ram_and_benchmark_ratios():
    slow = (
        OUTPUT.replace("getpid 0 1000000 5000", "getpid 0 1000000 10000")
        .replace("getpid 1 1000000 4000", "getpid 1 1000000 8000")
        .replace("spin 1 100 1000", "spin 1 100 2000")
    )
    r = resources(
        _doc("t", slow), _doc("k", OUTPUT), {"bzImage": 100}, {"bzImage": 150, "modules_bytes": 50}
    )
    assert r["rom_bytes"]["tailored"] == {"bzImage": 100, "modules": 0, "total": 100}
    assert r["rom_bytes"]["ratio"] == 0.5
    assert r["ram_used_kb"] == {"tailored": 11292, "trace_kernel": 11292, "ratio": 1.0}
    g = r["benchmarks"]["getpid"]
    assert (g["tailored_ns"], g["trace_kernel_ns"], g["ratio"]) == (8000, 4000, 2.0)
    assert g["ratio_spin_normalised"] == 1.0  # the tailored boot's CPU was half as fast
    assert r["benchmarks"]["walk"]["count"] == 20200
    none = resources(None, None, {"bzImage": 1}, {"bzImage": 1})
    assert none["ram_used_kb"]["tailored"] is None
    assert none["benchmarks"]["getpid"]["ratio"] is None
