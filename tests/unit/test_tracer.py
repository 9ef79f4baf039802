"""The tracer's verdicts on runs that went wrong: QEMU's own errors, a failed boot step, a guest
that did not run in check mode, a command line the kernel would cut. Real QEMU where it fails
before any kernel runs; a stand-in QEMU (tests/unit/fake_qemu.py) for the guests' consoles."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from kernel_rules.domain.guest.qemu import BootSpec, Machine
from kernel_rules.domain.trace.tracer import trace_app, trace_boot
from tests.conftest import require_tools
from tests.unit.fake_qemu import fake_qemu

REPO = Path(__file__).resolve().parents[2]
MARKER_LINE = "KERNEL_RULES_INIT_OK kernel 6.1.192 uptime 0.5\n"


def _bad_machine(tmp_path: Path) -> BootSpec:
    require_tools("qemu-system-x86_64")
    return BootSpec(
        "qemu-system-x86_64",
        str(tmp_path / "bzImage"),
        str(tmp_path / "initrd"),
        machine=Machine("no-such-machine"),
    )


def test_boot_trace_shows_qemus_own_error(tmp_path):
    r = trace_boot(_bad_machine(tmp_path), str(tmp_path), 60)
    assert not r["ok"]
    assert r["reason"].startswith(
        "QEMU exited with code 1 before the guest's init marker; QEMU's error output:"
    )
    assert "unsupported machine type" in r["reason"]


def test_app_trace_on_a_machine_qemu_refuses_fails_at_once_with_qemus_error(tmp_path):
    start = time.monotonic()
    r = trace_app(_bad_machine(tmp_path), str(tmp_path), 60)
    assert time.monotonic() - start < 10  # not the gdbstub's 30 s
    assert r["reason"].startswith(
        "QEMU exited with code 1 before the guest reached the "
        "application window; QEMU's error output:"
    )
    assert "unsupported machine type" in r["reason"]


def test_a_boot_script_that_exits_7_fails_the_boot_trace(tmp_path):
    qemu = fake_qemu(
        tmp_path,
        "boot step running\nkernel_rules: the boot step (boot_script) "
        "exited with status 7\n" + MARKER_LINE + "KR_MODE check boot_script=7\n",
    )
    r = trace_boot(BootSpec(qemu, "k", "i"), str(tmp_path), 60)
    assert not r["ok"]
    assert r["reason"] == "the boot step (`boot_script`) exited with status 7"


def test_a_boot_trace_that_did_not_run_in_check_mode_stops_at_once_and_fails(tmp_path):
    qemu = fake_qemu(
        tmp_path, MARKER_LINE + "KR_MODE interactive boot_script=none cmdline_bytes=2048\n/ # HANG"
    )
    start = time.monotonic()
    r = trace_boot(BootSpec(qemu, "k", "i"), str(tmp_path), 120)
    assert time.monotonic() - start < 10
    assert not r["ok"] and r["reason"].startswith("the guest did not run in check mode")


def test_a_boot_trace_without_the_guests_confirmation_fails(tmp_path):
    qemu = fake_qemu(tmp_path, MARKER_LINE)  # the init of before: marker, then power off
    r = trace_boot(BootSpec(qemu, "k", "i"), str(tmp_path), 60)
    assert not r["ok"] and "never confirmed the check mode" in r["reason"]


def test_the_tracer_refuses_a_command_line_the_kernel_would_cut(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_rules.domain.trace.tracer",
            "boot",
            "--qemu",
            "qemu",
            "--kernel",
            "k",
            "--initrd",
            "i",
            "--cmdline=" + "x" * 2100,
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 1
    assert "tracing refused: the kernel command line is too long: 2100 bytes" in done.stderr


def test_machine_values_starting_with_a_dash_reach_the_tracer_as_values(tmp_path):
    """`memory="-5M"` gave an argparse usage dump: the rules pass `--memory=-5M`."""
    qemu = fake_qemu(tmp_path, "", stderr="qemu-system-x86_64: -m -5M: bad size\n", code=1)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_rules.domain.trace.tracer",
            "boot",
            "--qemu",
            qemu,
            "--kernel",
            "k",
            "--initrd",
            "i",
            "--cmdline=console=ttyS0",
            "--memory=-5M",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 1 and "usage:" not in done.stderr
    assert "bad size" in done.stderr


def _insns(*addrs: int) -> str:
    return "".join(f"----------------\nIN: \n0x{a:016x}:  90   nop\n\n" for a in addrs)


def test_a_boot_trace_stops_at_the_user_space_marker_and_logs_everything_again(tmp_path):
    from kernel_rules.domain.guest.protocol import USERSPACE_BEGIN

    log = (
        _insns(0xFFFFFFFF81000100, 0xFFFFFFFF81000200)
        + "AT_BREAKPOINT\n"
        + _insns(USERSPACE_BEGIN, 0xFFFFFFFF81000200, 0xFFFFFFFF81000300)
    )
    qemu = fake_qemu(tmp_path, MARKER_LINE + "KR_MODE check boot_script=none\n", log=log)
    r = trace_boot(BootSpec(qemu, "k", "i"), str(tmp_path), 60)
    assert r["ok"], r["reason"]
    assert r["trace"].phases == {
        "init": {0xFFFFFFFF81000100, 0xFFFFFFFF81000200},
        "boot": {0xFFFFFFFF81000200, 0xFFFFFFFF81000300},
    }
    assert (tmp_path / "fake.hmp").read_text() == "log in_asm,nochain\n"


def test_a_boot_whose_init_never_runs_the_user_space_marker_fails(tmp_path):
    qemu = fake_qemu(
        tmp_path,
        MARKER_LINE + "KR_MODE check boot_script=none\n",
        log=_insns(0xFFFFFFFF81000100),
        stops=False,
    )
    r = trace_boot(BootSpec(qemu, "k", "i"), str(tmp_path), 60)
    assert not r["ok"]
    assert r["reason"] == (
        "the guest's /init never ran the user-space marker (/bin/kr-userspace-begin)"
    )


def test_addresses_txt_gives_each_address_its_phases(tmp_path):
    from kernel_rules.domain.map.mapper import read_addresses
    from kernel_rules.domain.guest.protocol import USERSPACE_BEGIN

    log = (
        _insns(0xFFFFFFFF81000100, 0xFFFFFFFF81000200)
        + "AT_BREAKPOINT\n"
        + _insns(USERSPACE_BEGIN, 0xFFFFFFFF81000200)
    )
    qemu = fake_qemu(tmp_path, MARKER_LINE + "KR_MODE check boot_script=none\n", log=log)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_rules.domain.trace.tracer",
            "boot",
            "--qemu",
            qemu,
            "--kernel",
            "k",
            "--initrd",
            "i",
            "--cmdline=console=ttyS0",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out/addresses.txt").read_text()
    assert text == "ffffffff81000100 init\nffffffff81000200 boot,init\n"
    assert read_addresses(text.splitlines()) == {
        0xFFFFFFFF81000100: ("init",),
        0xFFFFFFFF81000200: ("boot", "init"),
    }
