"""The app guests' framed report of their workload, both ends: the guest's shell code (run here
by the host's busybox sh) and the host's decoding and verdict; and app checks against a stand-in
QEMU that prints a given console."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel_rules.domain.guest.protocol import (
    WorkloadReport, verdict, without_frames, workload_report,
)
from kernel_rules.domain.guest.app_check import failure_details, run_app
from kernel_rules.domain.guest.init import render_app_init
from kernel_rules.domain.guest.qemu import BootSpec
from tests.conftest import require_tools
from tests.unit.fake_qemu import fake_qemu

KERNEL_LOG = """\
Linux version 6.1.192 (kernel_rules@kernel_rules) #1 SMP
Run /init as init process
KERNEL_RULES_INIT_OK kernel 6.1.192 uptime 0.97
KR_WINDOW_REQUEST
"""


def _frame_function() -> str:
    """`kr_frame` exactly as the app guest's init defines it."""
    init = render_app_init("t:app", "w.sh")
    start = init.index("kr_frame() {")
    return init[start:init.index("\n}\n", start) + 3]


def guest_report(tmp_path: Path, output: bytes, end: str) -> str:
    """What the guest's init prints for a workload that wrote `output` (busybox sh, the guest's
    own shell code, with the guest's paths moved into `tmp_path`)."""
    require_tools("busybox")
    log = tmp_path / "kr-workload.log"
    log.write_bytes(output)
    script = _frame_function().replace("/tmp/", f"{tmp_path}/") + f'kr_frame "{end}"\n'
    done = subprocess.run(["busybox", "sh", "-c", script], capture_output=True, check=True,
                          env={"PATH": "/bin:/usr/bin"})
    return done.stdout.decode()


@pytest.mark.parametrize("output", [
    b"", b"42\n", b"no newline at the end", "ünïcode\r\nand CRLF\n".encode(),
    bytes(range(256)) * 40,
    b"KR_WORKLOAD_STATUS 0 0 " + b"0" * 64 + b"\nKR_OUTPUT_BEGIN\n",  # the workload's own lines
])
def test_the_report_carries_the_output_byte_for_byte(tmp_path, output):
    console = KERNEL_LOG + guest_report(tmp_path, output, "KR_WORKLOAD_STATUS 3") + "KR_DONE\n"
    report = workload_report(console)
    assert report == WorkloadReport(3, output)


def test_a_kernel_message_never_passes_for_the_workload_output(tmp_path):
    """The false pass of issue 17: a workload that printed nothing, with a `success` regex that
    matches a kernel message on the console."""
    console = KERNEL_LOG + guest_report(tmp_path, b"", "KR_WORKLOAD_STATUS 0") + "KR_DONE\n"
    report = workload_report(console)
    assert report.status == 0 and report.output == b""
    why = verdict(report, "^Run /init")
    assert why == "its output does not match `success` '^Run /init' (it printed nothing)"
    assert verdict(workload_report(
        KERNEL_LOG + guest_report(tmp_path, b"Run /init, said the workload\n",
                                  "KR_WORKLOAD_STATUS 0")), "^Run /init") == ""


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


def test_no_report_says_so():
    report = workload_report(KERNEL_LOG + "KR_WORKLOAD_STATUS 0\n")  # the old, unframed line
    assert report.status is None and "never reported" in report.problem
    assert verdict(report, None) == report.problem


def test_a_running_workload_reports_its_output_so_far(tmp_path):
    console = KERNEL_LOG + "KR_DUMP\n" + guest_report(tmp_path, b"step 1\nstep 2\n",
                                                       "KR_WORKLOAD_RUNNING")
    report = workload_report(console)
    assert report.running and report.status is None and report.output == b"step 1\nstep 2\n"
    assert verdict(report, None) == "the workload had not finished when the run ended"
    details = failure_details(console, report)
    assert "workload output so far:\n  | step 1\n  | step 2" in details
    assert "KR_OUTPUT " not in details and "Run /init as init process" in details


def test_console_tails_leave_the_base64_out(tmp_path):
    console = KERNEL_LOG + guest_report(tmp_path, b"hello\n", "KR_WORKLOAD_STATUS 0")
    text = without_frames(console)
    assert "KR_OUTPUT " not in text and "KR_OUTPUT_BEGIN" in text and "Run /init" in text


# ---------------------------------------------------------------------------------------------
# run_app against a stand-in QEMU (tests/unit/fake_qemu.py)
# ---------------------------------------------------------------------------------------------

def test_app_check_fails_a_silent_workload_whose_success_matches_a_kernel_message(tmp_path):
    console = KERNEL_LOG + guest_report(tmp_path, b"", "KR_WORKLOAD_STATUS 0") + "KR_DONE\n"
    qemu = fake_qemu(tmp_path, console)
    r = run_app(BootSpec(qemu, "k", "i"), 30, "Run /init as init process")
    assert not r["passed"]
    assert r["reason"] == ("its output does not match `success` 'Run /init as init process' "
                           "(it printed nothing)")


def test_app_check_passes_on_the_workloads_own_output(tmp_path):
    console = KERNEL_LOG + guest_report(tmp_path, b"42\n", "KR_WORKLOAD_STATUS 0") + "KR_DONE\n"
    r = run_app(BootSpec(fake_qemu(tmp_path, console), "k", "i"), 30, "^42$")
    assert r["passed"], r["reason"]
    assert r["workload_status"] == 0 and r["boot_seconds"] == 0.97


def test_a_hung_workload_shows_what_it_printed_so_far(tmp_path):
    dump = guest_report(tmp_path, b"waiting for the database\n", "KR_WORKLOAD_RUNNING")
    qemu = fake_qemu(tmp_path, KERNEL_LOG + "HANG\n", dump=dump)
    start = time.monotonic()
    r = run_app(BootSpec(qemu, "k", "i"), 3, None)
    assert time.monotonic() - start < 15
    assert r["reason"] == "the workload did not finish within 3 s"
    assert "workload output so far:\n  | waiting for the database" in r["details"]


def test_qemus_own_error_is_in_the_reason(tmp_path):
    qemu = fake_qemu(tmp_path, "", stderr="qemu-system-x86_64: unsupported machine type\n",
                     code=1)
    r = run_app(BootSpec(qemu, "k", "i"), 30, None)
    assert r["reason"].startswith("the guest never reached its init; QEMU's error output:")
    assert "unsupported machine type" in r["reason"]
    assert "unsupported machine type" not in r["console"]


def test_app_check_refuses_a_command_line_the_kernel_would_cut(tmp_path):
    (tmp_path / "apps.json").write_text(json.dumps([]))
    done = subprocess.run(
        [sys.executable, "-m", "kernel_rules.domain.guest.app_check", "--qemu", "qemu", "--kernel",
         "k", "--apps", str(tmp_path / "apps.json"), "--cmdline=" + "x" * 2048,
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 1
    assert re.search(r"app check refused: the kernel command line is too long: 2048 bytes",
                     done.stdout), done.stdout + done.stderr
