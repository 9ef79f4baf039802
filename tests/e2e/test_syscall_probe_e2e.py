"""End to end, for real: `pants package examples/tailored:ipc-unminimised` boots the syscall
probe on the tailored kernel and on its trace kernel under QEMU. Every syscall whose gating option the
syscall -> Kconfig table names as on in the trace kernel and off in the ipc kernel returns
ENOSYS on the tailored kernel and not on the trace kernel, and the report shows the table, ROM,
RAM and the benchmark ratios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_rules.domain.kconfig.fragments import parse_config
from kernel_rules.domain.map.conditions import evaluate
from kernel_rules.domain.syscalls.kconfig_table import decode

DIST = Path("dist/examples.tailored/ipc-unminimised")


@pytest.fixture(scope="module")
def ipc(ws):
    result = ws.pants(
        "package",
        "examples/tailored:ipc-unminimised",
        "examples/tracing:trace-kernel",
        "examples/tracing:ipc",
        timeout=3000,
    )
    assert result.returncode == 0, result.output[-8000:]
    return ws.root


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _gated_off_here(root: Path) -> dict:
    """{number: name} of the syscalls the table says are on in the trace kernel, off in ipc."""
    table = _json(root / "dist/examples.tracing/ipc/syscall-kconfig.json")
    mine = parse_config((root / DIST / "config").read_text())
    trace = parse_config((root / "dist/examples.tracing/trace-kernel/config").read_text())
    out = {}
    for name, row in table["syscalls"].items():
        formula = decode(row["formula"])
        if evaluate(formula, trace) is True and evaluate(formula, mine) is False:
            out[row["number"]] = name
    return out


def test_a_syscall_whose_option_is_off_returns_enosys_only_on_the_tailored_kernel(ipc):
    gated = _gated_off_here(ipc)
    # the ipc workload never uses timerfd, which the trace kernel's universe enables
    assert "timerfd_create" in gated.values(), gated
    mine = _json(ipc / DIST / "probe/tailored/probe.json")
    trace = _json(ipc / DIST / "probe/trace-kernel/probe.json")
    assert mine["passed"] and trace["passed"], (mine["reason"], trace["reason"])
    for number, name in gated.items():
        assert mine["syscalls"][str(number)]["enosys"], (name, mine["syscalls"][str(number)])
        assert not trace["syscalls"][str(number)]["enosys"], (name, trace["syscalls"][str(number)])
    # what the ipc program itself needs answers on both
    for number in (232, 284, 290, 291):  # epoll_wait, eventfd, eventfd2, epoll_create1
        assert not mine["syscalls"][str(number)]["enosys"], number
    report = _json(ipc / DIST / "report.json")
    removed = {x["name"] for x in report["syscall_table"]["removed"]}
    assert set(gated.values()) <= removed, (gated, removed)
    assert report["syscall_table"]["added"] == []
    t = report["syscall_table"]
    assert t["tailored"]["present"] < t["trace_kernel"]["present"]
    assert t["tailored"]["unnamed_present"] == [] and t["trace_kernel"]["unnamed_present"] == []


def test_the_report_shows_rom_ram_and_benchmark_ratios(ipc):
    report = _json(ipc / DIST / "report.json")
    r = report["resources"]
    assert r["rom_bytes"]["tailored"]["total"] == report["sizes"]["tailored"]["bzImage"]
    assert 0 < r["rom_bytes"]["ratio"] < 1
    assert r["ram_used_kb"]["tailored"] > 0 and r["ram_used_kb"]["trace_kernel"] > 0
    for name, count in (("getpid", 1_000_000), ("walk", 20_200)):
        b = r["benchmarks"][name]
        assert b["count"] == count, (name, b)
        assert b["tailored_ns"] > 0 and b["trace_kernel_ns"] > 0 and b["ratio"] > 0, (name, b)
        assert b["ratio_spin_normalised"] > 0, (name, b)
    md = (ipc / DIST / "report.md").read_text()
    assert "## Verified syscall table" in md and "`timerfd_create` (283, TIMERFD)" in md
    assert "## ROM, RAM and the cost of a syscall" in md
    html = (ipc / DIST / "report.html").read_text()
    assert 'id="syscall-table"' in html and 'id="benchmarks"' in html
    assert (ipc / DIST / "probe/tailored/console.log").read_text().count("KR_PROBE") == 0
