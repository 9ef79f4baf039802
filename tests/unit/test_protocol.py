"""The console protocol (domain.guest.protocol): the wire format, and round trips: what the
guest-side writers print (run here under busybox sh, tests/unit/fake_guest.py) parses back on the
host side, and the verdicts."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from kernel_rules.domain.guest import protocol
from kernel_rules.domain.guest.init import BOOT_INIT, render_app_init
from kernel_rules.domain.guest.protocol import (
    WorkloadReport,
    check_problem,
    verdict,
    without_frames,
    workload_report,
)
from tests.unit.fake_guest import KERNEL_LOG, guest_report, run_guest_sh

MARKER_LINE = "KERNEL_RULES_INIT_OK kernel 6.1.192 uptime 0.5\n"
APP_INIT = render_app_init("//app:x", "run.sh")


# --- the wire format --------------------------------------------------------------------------


def test_the_wire_format_is_pinned():
    """Guests built before a change must still be understood: these bytes never change."""
    assert (
        protocol.MODULE_SECTION,
        protocol.INIT_MARKER,
        protocol.CHECK_PARAM,
        protocol.MODE_LINE,
        protocol.MEMINFO,
        protocol.WINDOW_REQUEST,
        protocol.OUTPUT_BEGIN,
        protocol.OUTPUT_LINE,
        protocol.WORKLOAD_STATUS_LINE,
        protocol.WORKLOAD_RUNNING,
        protocol.DUMP_REQUEST,
        protocol.MODULE_PREFIX,
        protocol.DONE,
        protocol.APP_READY,
    ) == (
        "KR_MODSECT",
        "KERNEL_RULES_INIT_OK",
        "kernel_rules.mode=check",
        "KR_MODE",
        "KR_MEMINFO",
        "KR_WINDOW_REQUEST",
        "KR_OUTPUT_BEGIN",
        "KR_OUTPUT",
        "KR_WORKLOAD_STATUS",
        "KR_WORKLOAD_RUNNING",
        "KR_DUMP",
        "KR_MODULE",
        "KR_DONE",
        "KR_APP_READY",
    )
    assert protocol.DUMP_REQUEST_LINE == b"KR_DUMP\n"
    assert protocol.MARKER_PROGRAMS == (
        ("/bin/kr-userspace-begin", 0x444444444000),
        ("/bin/kr-window-begin", 0x333333333000),
        ("/bin/kr-window-end", 0x222222222000),
    )
    assert protocol.marker_define(protocol.WINDOW_BEGIN) == "MARKER_ADDRESS=0x333333333000L"


def test_every_marker_the_inits_print_comes_from_the_protocol():
    printed = set(re.findall(r"\bKR_[A-Z_]+\b", APP_INIT + BOOT_INIT))
    defined = {v for v in vars(protocol).values() if isinstance(v, str) and v.startswith("KR_")}
    assert printed <= defined, printed - defined


def test_the_inits_are_assembled_from_the_protocols_writers():
    for writer in (
        protocol.LIST_MODULE_SECTIONS.strip(),
        protocol.print_init_marker(True),
        protocol.PRINT_MODE_CHECK,
        protocol.PRINT_MODE_INTERACTIVE,
        protocol.USERSPACE_BEGIN_PROGRAM,
        f'*" {protocol.CHECK_PARAM} "*)',
    ):
        assert writer in BOOT_INIT, writer
    for writer in (
        protocol.LIST_MODULE_SECTIONS.strip(),
        protocol.print_init_marker(False),
        protocol.PRINT_MEMINFO,
        protocol.FRAME_FUNCTION,
        protocol.DUMP_LISTENER,
        protocol.PRINT_WINDOW_REQUEST,
        protocol.WINDOW_BEGIN_PROGRAM,
        protocol.WINDOW_END_PROGRAM,
        protocol.REPORT_STATUS,
        protocol.PRINT_MODULES,
        protocol.PRINT_DONE,
    ):
        assert writer in APP_INIT, writer
    assert (
        APP_INIT.index(protocol.WINDOW_BEGIN_PROGRAM)
        < APP_INIT.index(f"> {protocol.WORKLOAD_LOG} 2>&1")
        < APP_INIT.index(protocol.WINDOW_END_PROGRAM)
    )


def test_the_marker_addresses_are_distinct_user_pages():
    addresses = [a for _, a in protocol.MARKER_PROGRAMS]
    assert len(set(addresses)) == 3
    assert all(a % 4096 == 0 and 0 < a < 1 << 47 for a in addresses)


def test_the_protocol_imports_only_the_standard_library():
    """Every step ships it: it must stay light (no Pants, no other kernel_rules module)."""
    tree = ast.parse(Path(protocol.__file__).read_text())
    names = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    names |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    }
    assert names <= {
        "__future__",
        "base64",
        "binascii",
        "collections",
        "dataclasses",
        "hashlib",
        "re",
        "typing",
    }, names


# --- boots: the init marker and the mode line ---------------------------------------------------


def _boot_lines(tmp_path, kr_boot: str, check: bool) -> str:
    (tmp_path / "uptime").write_text("1.25 0.50\n")
    (tmp_path / "cmdline").write_text("console=ttyS0 nokaslr\n")
    mode = protocol.PRINT_MODE_CHECK if check else protocol.PRINT_MODE_INTERACTIVE
    script = f"kr_boot={kr_boot}\n{protocol.print_init_marker(True)}\n{mode}\n"
    return run_guest_sh(script, {"/proc/": f"{tmp_path}/"})


@pytest.mark.parametrize(
    "kr_boot, problem",
    [("none", ""), ("0", ""), ("7", "the boot step (`boot_script`) exited with status 7")],
)
def test_a_check_boots_lines_parse_back(tmp_path, kr_boot, problem):
    console = _boot_lines(tmp_path, kr_boot, check=True)
    assert protocol.init_uptime(console) == 1.25
    assert check_problem("Linux version 6.1\n" + console) == problem
    assert not protocol.interactive(console)


def test_an_interactive_boots_lines_parse_back(tmp_path):
    console = _boot_lines(tmp_path, "none", check=False)
    assert protocol.interactive(console)
    assert check_problem(console).startswith(
        "the guest did not run in check mode: its kernel command line (21 bytes as the guest saw "
        "it) lacks `kernel_rules.mode=check`"
    )


@pytest.mark.parametrize(
    "tail, problem",
    [
        ("KR_MODE check boot_script=none\n", ""),
        ("KR_MODE check boot_script=0\n", ""),
        ("KR_MODE check boot_script=7\n", "the boot step (`boot_script`) exited with status 7"),
        (
            "KR_MODE interactive boot_script=none cmdline_bytes=2048\n",
            "the guest did not run in check mode: its kernel command line (2048 bytes as the guest saw "
            "it) lacks `kernel_rules.mode=check`",
        ),
        ("", "the guest printed its init marker but never confirmed the check mode"),
    ],
)
def test_a_check_boot_passes_only_when_the_guest_confirms_it(tail, problem):
    assert check_problem("Linux version 6.1\n" + MARKER_LINE + tail).startswith(problem)
    assert bool(check_problem(MARKER_LINE + tail)) == bool(problem)
    assert check_problem((MARKER_LINE + tail).replace("\n", "\r\n")).startswith(problem)


def test_a_confirmation_before_the_marker_does_not_count():
    assert check_problem("KR_MODE check boot_script=none\n" + MARKER_LINE)
    assert (
        check_problem("KR_MODE check boot_script=none\n")
        == "the guest never printed its init marker"
    )


def test_no_init_marker_no_uptime():
    assert protocol.init_uptime("Linux version 6.1\n") is None


# --- modules and memory -----------------------------------------------------------------------


def test_the_module_section_list_parses_back(tmp_path):
    for module, section, address in (
        ("demo", ".text", "0xffffffffc0100000"),
        ("demo", ".init.text", "0xffffffffc0200000"),
        ("demo", ".exit.text", "0x0000000000000000"),
        ("demo", ".data", "0xffffffffc0400000"),
        ("other", ".text", "0xffffffffc0300000"),
    ):
        (tmp_path / module / "sections").mkdir(parents=True, exist_ok=True)
        (tmp_path / module / "sections" / section).write_text(address + "\n")
    (tmp_path / "nosections").mkdir()
    console = run_guest_sh(protocol.LIST_MODULE_SECTIONS, {"/sys/module/": f"{tmp_path}/"})
    assert protocol.parse_sections(console.replace("\n", "\r\n")) == {
        "demo": {".init.text": 0xFFFFFFFFC0200000, ".text": 0xFFFFFFFFC0100000},
        "other": {".text": 0xFFFFFFFFC0300000},
    }


def test_parse_sections_keeps_nonzero_addresses_and_strips_cr():
    console = (
        "[    1.0] something\n"
        "KR_MODSECT demo .text 0xffffffffc0100000\r\n"
        "KR_MODSECT demo .init.text 0xffffffffc0200000\n"
        "KR_MODSECT demo .exit.text 0x0000000000000000\n"
        "KR_MODSECT other .text 0xffffffffc0300000\n"
        "KR_MODULE demo 16384 0 - Live 0xffffffffc0100000\n"
    )
    assert protocol.parse_sections(console) == {
        "demo": {".init.text": 0xFFFFFFFFC0200000, ".text": 0xFFFFFFFFC0100000},
        "other": {".text": 0xFFFFFFFFC0300000},
    }


def test_the_module_list_parses_back(tmp_path):
    (tmp_path / "modules").write_text(
        "virtio_net 61440 0 - Live 0xffffffffc0100000\n"
        "net_failover 24576 1 virtio_net, Live 0xffffffffc0200000 (E)\n"
    )
    console = run_guest_sh(protocol.PRINT_MODULES, {"/proc/": f"{tmp_path}/"})
    assert protocol.loaded_modules(KERNEL_LOG + console) == [
        ("virtio_net", "0xffffffffc0100000"),
        ("net_failover", "0xffffffffc0200000"),
    ]


def test_the_memory_line_parses_back(tmp_path):
    (tmp_path / "meminfo").write_text(
        "MemTotal:         230000 kB\nMemFree:          200000 kB\nMemAvailable:     210000 kB\n"
    )
    console = run_guest_sh(protocol.PRINT_MEMINFO, {"/proc/": f"{tmp_path}/"})
    assert console == "KR_MEMINFO 230000 210000\n"
    assert protocol.meminfo(KERNEL_LOG + console) == (230000, 210000)
    assert protocol.meminfo(KERNEL_LOG) is None


# --- apps: the framed report --------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        b"",
        b"42\n",
        b"no newline at the end",
        "ünïcode\r\nand CRLF\n".encode(),
        bytes(range(256)) * 40,
        b"KR_WORKLOAD_STATUS 0 0 " + b"0" * 64 + b"\nKR_OUTPUT_BEGIN\n",  # the workload's own lines
    ],
)
def test_the_report_carries_the_output_byte_for_byte(tmp_path, output):
    console = KERNEL_LOG + guest_report(tmp_path, output, "KR_WORKLOAD_STATUS 3") + "KR_DONE\n"
    report = workload_report(console)
    assert report == WorkloadReport(3, output)
    assert verdict(report, None) == "the workload exited with status 3"


def test_the_app_inits_status_line_parses_back(tmp_path):
    (tmp_path / "kr-workload.log").write_bytes(b"done\n")
    script = (
        f"{protocol.FRAME_FUNCTION}\nstatus=0\n{protocol.REPORT_STATUS}\n{protocol.PRINT_DONE}\n"
    )
    console = run_guest_sh(script, {"/tmp/": f"{tmp_path}/"})
    assert workload_report(console) == WorkloadReport(0, b"done\n")
    assert verdict(workload_report(console), "^done$") == "" and protocol.DONE in console


def test_the_listener_answers_the_hosts_dump_request(tmp_path):
    (tmp_path / "kr-workload.log").write_bytes(b"waiting for the database\n")
    (tmp_path / "console-in").write_bytes(protocol.DUMP_REQUEST_LINE)
    script = f"{protocol.FRAME_FUNCTION}\n{protocol.DUMP_LISTENER}\nwait\n"
    console = run_guest_sh(
        script, {"/tmp/": f"{tmp_path}/", "/dev/console": str(tmp_path / "console-in")}
    )
    assert protocol.RUNNING_REPORTED.search(KERNEL_LOG + console)
    assert protocol.RUNNING_REPORTED_BYTES.search((KERNEL_LOG + console).encode())
    report = workload_report(KERNEL_LOG + console)
    assert report == WorkloadReport(None, b"waiting for the database\n", running=True)
    assert verdict(report, None) == "the workload had not finished when the run ended"


def test_the_listener_ignores_any_other_line(tmp_path):
    (tmp_path / "kr-workload.log").write_bytes(b"x\n")
    (tmp_path / "console-in").write_bytes(b"KR_DUMPX\n")
    script = f"{protocol.FRAME_FUNCTION}\n{protocol.DUMP_LISTENER}\nwait\n"
    assert (
        run_guest_sh(
            script, {"/tmp/": f"{tmp_path}/", "/dev/console": str(tmp_path / "console-in")}
        )
        == ""
    )


def test_a_kernel_message_never_passes_for_the_workload_output(tmp_path):
    """The false pass of issue 17: a workload that printed nothing, with a `success` regex that
    matches a kernel message on the console."""
    console = KERNEL_LOG + guest_report(tmp_path, b"", "KR_WORKLOAD_STATUS 0") + "KR_DONE\n"
    report = workload_report(console)
    assert report.status == 0 and report.output == b""
    why = verdict(report, "^Run /init")
    assert why == "its output does not match `success` '^Run /init' (it printed nothing)"
    assert (
        verdict(
            workload_report(
                KERNEL_LOG
                + guest_report(tmp_path, b"Run /init, said the workload\n", "KR_WORKLOAD_STATUS 0")
            ),
            "^Run /init",
        )
        == ""
    )


def test_the_status_is_the_guests_not_what_the_workload_printed(tmp_path):
    output = b"KR_WORKLOAD_STATUS 0 0 " + b"0" * 64 + b"\n"
    console = KERNEL_LOG + guest_report(tmp_path, output, "KR_WORKLOAD_STATUS 1")
    assert verdict(workload_report(console), None) == "the workload exited with status 1"


def test_a_damaged_report_is_a_problem_not_a_verdict(tmp_path):
    report = guest_report(tmp_path, b"x" * 300 + b"\n", "KR_WORKLOAD_STATUS 0")
    lines = report.splitlines()
    lines[2] = lines[2][:30] + "serial8250: too much work" + lines[2][30:]  # printk mid-line
    damaged = workload_report(KERNEL_LOG + "\n".join(lines) + "\n")
    assert damaged.problem.startswith("the guest's report of the workload's output was damaged")
    assert verdict(damaged, None) == damaged.problem
    # A whole kernel line between report lines is not part of it.
    lines = report.splitlines()
    lines.insert(2, "random: crng init done")
    assert workload_report("\n".join(lines)) == WorkloadReport(0, b"x" * 300 + b"\n")


def test_an_undecodable_report_is_a_problem(tmp_path):
    console = guest_report(tmp_path, b"hello\n", "KR_WORKLOAD_STATUS 0")
    damaged = console.replace("KR_OUTPUT aGVsbG8K", "KR_OUTPUT aGVsbG9vCg==")
    report = workload_report(damaged)
    assert report.status is None and "damaged" in report.problem


def test_the_last_complete_report_counts(tmp_path):
    first = guest_report(tmp_path, b"so far\n", "KR_WORKLOAD_RUNNING")
    last = guest_report(tmp_path, b"all of it\n", "KR_WORKLOAD_STATUS 0")
    assert workload_report(first + last + "KR_OUTPUT_BEGIN\n") == WorkloadReport(0, b"all of it\n")


def test_no_report_says_so():
    report = workload_report(KERNEL_LOG + "KR_WORKLOAD_STATUS 0\n")  # the old, unframed line
    assert report.status is None and "never reported" in report.problem
    assert verdict(report, None) == report.problem


def test_console_tails_leave_the_base64_out(tmp_path):
    console = KERNEL_LOG + guest_report(tmp_path, b"hello\n", "KR_WORKLOAD_STATUS 0")
    text = without_frames(console)
    assert "KR_OUTPUT " not in text and "KR_OUTPUT_BEGIN" in text and "Run /init" in text
    assert protocol.console_tail("a\nb\nc\n", 2) == "b\nc"
