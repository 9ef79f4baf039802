"""End to end, for real: `pants package examples/tracing:ipc` writes the app's syscalls, found
statically in its guest image and seen in its real QEMU trace, and the source's syscall ->
Kconfig table, checked against the trace kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DIST = Path("dist/examples.tracing/ipc")
# What ipc_demo.c calls (epoll_create1(), eventfd() -> eventfd2, syscall(SYS_futex), ...).
IPC_SYSCALLS = ("epoll_create1", "epoll_ctl", "epoll_wait", "eventfd2", "futex", "socketpair")


@pytest.fixture(scope="module")
def ipc(ws):
    result = ws.pants("package", "examples/tracing:ipc")
    assert result.returncode == 0, result.output[-6000:]
    return ws.root / DIST


def _json(ipc: Path, name: str) -> dict:
    return json.loads((ipc / name).read_text())


def test_the_ipc_program_syscalls_are_found_statically_and_traced(ipc):
    doc = _json(ipc, "syscalls.json")
    assert doc["format"] == "kernel_rules/syscalls@1"
    assert doc["target"] == "examples/tracing:ipc"
    program = doc["binaries"]["/usr/bin/ipc_demo"]
    assert program["kind"] == "app"
    for name in IPC_SYSCALLS:
        row = doc["syscalls"][name]
        assert row["static_in_app"] and row["traced"], (name, row)
        assert name in program["syscalls"], name
        where = program["syscalls"][name][0]
        assert where["binary"] == "/usr/bin/ipc_demo" and where["address"].startswith("0x")
    # syscall(SYS_futex, ...) in main() and waker(): libc's wrapper, the number in %edi.
    futex_sites = {(s["function"], s["via"]) for s in program["syscalls"]["futex"]}
    assert {("main", "wrapper"), ("waker", "wrapper")} <= futex_sites
    assert "/bin/busybox" in doc["binaries"]  # the image's shell is analysed too
    assert set(doc["static_not_traced"]) == set(doc["static"]) - set(doc["traced"])
    assert set(doc["traced_not_static"]) == set(doc["traced"]) - set(doc["static"])
    assert not doc["unreadable"]


def test_the_summary_table(ipc):
    md = (ipc / "syscalls.md").read_text()
    assert md.startswith("# Syscalls of examples/tracing:ipc")
    assert "| 290 | eventfd2 | x | x | x | EVENTFD |" in md
    assert "| 291 | epoll_create1 | x | x | x | EPOLL |" in md


def test_the_syscall_kconfig_table(ipc):
    table = _json(ipc, "syscall-kconfig.json")
    assert table["format"] == "kernel_rules/syscall-kconfig@1"
    rows = table["syscalls"]
    assert rows["eventfd2"]["requires"] == {"EVENTFD": "ym"}
    assert rows["eventfd2"]["definitions"][0]["file"] == "fs/eventfd.c"
    for name in ("epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait"):
        assert rows[name]["requires"] == {"EPOLL": "ym"}, name
    assert rows["signalfd4"]["requires"] == {"SIGNALFD": "ym"}
    assert rows["futex"]["requires"] == {"FUTEX": "ym"}
    assert all(rows[n]["cond_syscall"] for n in ("eventfd2", "epoll_create1", "signalfd4"))
    assert rows["read"]["status"] == "always" and rows["read"]["number"] == 0
    assert len(rows) > 300


def test_the_table_agrees_with_the_trace_kernel(ipc):
    check = _json(ipc, "syscalls.json")["kconfig_check"]
    assert check["agree"] > 300
    disagreeing = {r["name"] for r in check["missing_in_kernel"] + check["unexpected_in_kernel"]}
    assert not disagreeing & {"eventfd2", "epoll_create1", "signalfd4", "futex"}
