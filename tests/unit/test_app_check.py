"""App checks (domain.guest.app_check) against a stand-in QEMU that prints a given console; the
guest's framed report itself is tested in test_protocol.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from kernel_rules.domain.guest.app_check import failure_details, run_app
from kernel_rules.domain.guest.protocol import workload_report
from kernel_rules.domain.guest.qemu import BootSpec
from tests.unit.fake_guest import KERNEL_LOG, guest_report
from tests.unit.fake_qemu import fake_qemu


def test_failure_details_show_the_output_so_far_without_the_base64(tmp_path):
    console = (
        KERNEL_LOG
        + "KR_DUMP\n"
        + guest_report(tmp_path, b"step 1\nstep 2\n", "KR_WORKLOAD_RUNNING")
    )
    details = failure_details(console, workload_report(console))
    assert "workload output so far:\n  | step 1\n  | step 2" in details
    assert "KR_OUTPUT " not in details and "Run /init as init process" in details


# ---------------------------------------------------------------------------------------------
# run_app against a stand-in QEMU (tests/unit/fake_qemu.py)
# ---------------------------------------------------------------------------------------------


def test_app_check_fails_a_silent_workload_whose_success_matches_a_kernel_message(tmp_path):
    console = KERNEL_LOG + guest_report(tmp_path, b"", "KR_WORKLOAD_STATUS 0") + "KR_DONE\n"
    qemu = fake_qemu(tmp_path, console)
    r = run_app(BootSpec(qemu, "k", "i"), 30, "Run /init as init process")
    assert not r["passed"]
    assert r["reason"] == (
        "its output does not match `success` 'Run /init as init process' (it printed nothing)"
    )


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
    qemu = fake_qemu(tmp_path, "", stderr="qemu-system-x86_64: unsupported machine type\n", code=1)
    r = run_app(BootSpec(qemu, "k", "i"), 30, None)
    assert r["reason"].startswith("the guest never reached its init; QEMU's error output:")
    assert "unsupported machine type" in r["reason"]
    assert "unsupported machine type" not in r["console"]


def test_app_check_refuses_a_command_line_the_kernel_would_cut(tmp_path):
    (tmp_path / "apps.json").write_text(json.dumps([]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_rules.domain.guest.app_check",
            "--qemu",
            "qemu",
            "--kernel",
            "k",
            "--apps",
            str(tmp_path / "apps.json"),
            "--cmdline=" + "x" * 2048,
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 1
    assert re.search(
        r"app check refused: the kernel command line is too long: 2048 bytes", done.stdout
    ), done.stdout + done.stderr
