from kernel_rules.domain.guest.qemu import BootSpec, Machine, command_line


def test_guest_has_no_network_and_no_host_filesystem():
    argv = command_line(BootSpec("qemu", "k", "i", "console=ttyS0; rm -rf /"))
    assert argv[argv.index("-nic") + 1] == "none"
    assert "-nodefaults" in argv and "-no-user-config" in argv
    assert not any(a.startswith(("-virtfs", "-fsdev", "-netdev", "-drive")) for a in argv)
    # The command line is one argument: no shell ever sees it.
    assert argv[argv.index("-append") + 1] == "console=ttyS0; rm -rf /"


def test_machine_description_is_passed_through():
    argv = command_line(
        BootSpec(
            "qemu", "k", "i", machine=Machine("pc", 2, "512M", ("virtio-rng-pci",)), accel="tcg"
        )
    )
    assert argv[argv.index("-machine") + 1] == "pc"
    assert argv[argv.index("-smp") + 1] == "2"
    assert argv[argv.index("-m") + 1] == "512M"
    assert argv[argv.index("-device") + 1] == "virtio-rng-pci"
    assert argv[argv.index("-accel") + 1] == "tcg"


# ---------------------------------------------------------------------------------------------
# what the BUILD fields may hold, the guest's check confirmation, QEMU's own errors
# ---------------------------------------------------------------------------------------------

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from kernel_rules.domain.guest.protocol import CHECK_PARAM
from kernel_rules.domain.guest.qemu import (
    boot_until,
    cmdline_problem,
    memory_problem,
    watch_console,
)
from tests.conftest import require_tools  # noqa: E402
from tests.unit.fake_qemu import fake_qemu  # noqa: E402

MARKER_LINE = "KERNEL_RULES_INIT_OK kernel 6.1.192 uptime 0.5\n"


@pytest.mark.parametrize("value", ["256M", "1G", "1.5G", "512", "16M", "262144K", "256MB"])
def test_memory_sizes_qemu_reads(value):
    assert memory_problem(value) == ""


@pytest.mark.parametrize(
    "value, problem",
    [
        ("-5M", "'-5M' is not a memory size"),
        ("abc", "'abc' is not a memory size"),
        ("", "'' is not a memory size"),
        ("256 M", "'256 M' is not a memory size"),
        ("0", "'0' is too little memory: at least 16M"),
        ("8M", "'8M' is too little memory"),
    ],
)
def test_memory_sizes_that_are_refused(value, problem):
    assert memory_problem(value).startswith(problem)


def test_command_line_with_what_kernel_rules_appends_must_fit_the_kernels_buffer():
    appended = f" nokaslr {CHECK_PARAM}"
    assert cmdline_problem("x" * (2047 - len(appended))) == ""
    why = cmdline_problem("x" * (2048 - len(appended)))
    assert why.startswith(
        "the kernel command line is too long: 2016 bytes, 2048 with what "
        "kernel_rules appends ('nokaslr kernel_rules.mode=check')"
    )
    assert "at most 2015 bytes" in why
    assert cmdline_problem("x" * 2047, "") == "" and cmdline_problem("x" * 2048, "")


def test_boot_check_shows_qemus_own_error(tmp_path):
    """A machine QEMU does not know: the reason carries QEMU's message, not an empty console."""
    require_tools("qemu-system-x86_64")
    r = boot_until(
        BootSpec(
            "qemu-system-x86_64",
            str(tmp_path / "k"),
            str(tmp_path / "i"),
            machine=Machine("no-such-machine"),
        ),
        "KERNEL_RULES_INIT_OK",
        60,
    )
    assert not r.ok
    assert r.reason.startswith(
        "QEMU exited with code 1 before the init marker; QEMU's error output:"
    )
    assert "unsupported machine type" in r.reason
    assert "unsupported machine type" not in r.console


def test_boot_check_fails_a_boot_script_that_failed(tmp_path):
    qemu = fake_qemu(tmp_path, MARKER_LINE + "KR_MODE check boot_script=7\n")
    r = boot_until(BootSpec(qemu, "k", "i"), "KERNEL_RULES_INIT_OK", 60)
    assert not r.ok and r.reason == "the boot step (`boot_script`) exited with status 7"


def test_boot_check_stops_a_guest_that_did_not_get_the_check_mode(tmp_path):
    qemu = fake_qemu(
        tmp_path,
        MARKER_LINE + "KR_MODE interactive boot_script=none "
        "cmdline_bytes=2048\nBusyBox built-in shell (ash)\n/ # HANG",
    )
    start = time.monotonic()
    r = boot_until(BootSpec(qemu, "k", "i"), "KERNEL_RULES_INIT_OK", 120)
    assert time.monotonic() - start < 10
    assert not r.ok and r.reason.startswith("the guest did not run in check mode")


def test_watch_console_keeps_stderr_apart_and_asks_before_giving_up(tmp_path):
    qemu = fake_qemu(
        tmp_path, "booting\nHANG\n", stderr="qemu: warning: something\n", dump="the output so far\n"
    )
    asked = []

    def on_timeout(proc):
        asked.append(True)
        proc.stdin.write(b"KR_DUMP\n")
        proc.stdin.flush()
        return 5.0

    def on_output(buf, proc):
        return 0.5 if b"so far" in buf else None

    run = watch_console([qemu], 2, on_output, stdin=subprocess.PIPE, on_timeout=on_timeout)
    assert asked and run.timed_out
    assert run.console.decode().replace("\r", "") == "booting\nHANG\nKR_DUMP\nthe output so far\n"
    assert run.stderr == "qemu: warning: something\n"


def test_watch_console_stops_a_guest_that_does_not_show_a_line_in_time(tmp_path):
    qemu = fake_qemu(tmp_path, "booting\nHANG\n")
    start = time.monotonic()
    run = watch_console([qemu], 120, lambda buf, proc: None, must_see=(b"KERNEL_RULES_INIT", 1))
    assert run.stalled and not run.timed_out
    assert time.monotonic() - start < 10
    seen = watch_console([qemu], 2, lambda buf, proc: None, must_see=(b"booting", 1))
    assert not seen.stalled and seen.timed_out


def _gone(pid: int, within: float = 10) -> bool:
    """True once `pid` has ended (a zombie nobody reaped yet counts as ended)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _guarded_sleeper(tmp_path, parent_argv=()) -> tuple:
    """(the process started, the pid of the guarded `sleep` standing in for QEMU)."""
    pid_file = tmp_path / "child.pid"
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    guard = [
        sys.executable,
        os.path.join(repo, "kernel_rules/domain/guest/guard.py"),
        "--",
        "sh",
        "-c",
        f"echo $$ > {pid_file}; exec sleep 600",
    ]
    proc = subprocess.Popen([*parent_argv, *guard], start_new_session=True)
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the guarded child never started"
        time.sleep(0.05)
    return proc, int(pid_file.read_text())


def test_an_interactive_qemu_dies_with_its_guard(tmp_path):
    guard, child = _guarded_sleeper(tmp_path)
    try:
        os.kill(guard.pid, signal.SIGKILL)
        guard.wait()
        assert _gone(child), "the guarded process outlived its guard"
    finally:
        if not _gone(child, 0):
            os.kill(child, signal.SIGKILL)


def test_an_interactive_qemu_dies_when_the_process_that_ran_it_is_killed(tmp_path):
    """`pants run` killed from its client: the guard's parent goes, and QEMU with it."""
    parent = [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])"]
    runner, child = _guarded_sleeper(tmp_path, parent)
    try:
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
        assert _gone(child), "the guarded process outlived the process that ran it"
    finally:
        if not _gone(child, 0):
            os.kill(child, signal.SIGKILL)


def test_the_guard_passes_on_the_exit_status_and_signals(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    guard = [sys.executable, os.path.join(repo, "kernel_rules/domain/guest/guard.py"), "--"]
    assert subprocess.run(guard + ["sh", "-c", "exit 3"]).returncode == 3
    proc = subprocess.Popen(guard + ["sleep", "600"])
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
