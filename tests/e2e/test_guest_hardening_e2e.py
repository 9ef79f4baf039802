"""End to end, for real: guests that used to pass falsely now fail, with the cause in the error.

One scratch workspace; every guest boots the small `examples/minimal:kernel` (a debug-info
tinyconfig kernel, so it serves as a trace kernel too): a workload that prints nothing with a
`success` regex matching a kernel message, a `boot_script` exiting 7, a hung workload, a machine
QEMU does not know, bad field values (refused when the BUILD file is read, before any build), and
`pants run` killed from its client. About 8 minutes on 2 cores, most of it the kernel build."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from typing import List

import pytest

from tests.e2e.workspace import REPO

KERNEL = "//examples/minimal:kernel"

GUESTS = f'''
kernel_baseline(name="minimal", kernel="{KERNEL}", timeout=240)
kernel_baseline(name="boot-exit-7", kernel="{KERNEL}", boot_script="exit7.sh", timeout=240)
kernel_baseline(name="bad-machine", kernel="{KERNEL}", machine="no-such-machine")
app_profile(name="silent", baseline=":minimal", workload="silent.sh",
            success="Run /init as init process")
app_profile(name="app-on-bad-machine", baseline=":bad-machine", workload="silent.sh")
app_profile(name="hung", baseline=":minimal", workload="hung.sh", timeout=45)
app_profile(name="equals", baseline=":minimal", files=["data/a=b.txt"], workload="equals.sh")
'''

# One directory each: a BUILD file with a bad field fails as a whole when it is read.
PARSE_TIME = {
    "regex": (
        'app_profile(name="t", baseline="//guests:minimal", workload="w.sh", success="([")',
        "guests_bad/regex:t: field `success`: '([' is not a regular expression (Python "
        "syntax): unterminated character set at position 1",
    ),
    "memory-negative": (
        f'kernel_baseline(name="t", kernel="{KERNEL}", memory="-5M")',
        "guests_bad/memory-negative:t: field `memory`: '-5M' is not a memory "
        "size: expected a number of MiB or a number with a K, M, G or T suffix, "
        "such as `256M` or `1G`",
    ),
    "memory-zero": (
        f'kernel_baseline(name="t", kernel="{KERNEL}", memory="0")',
        "guests_bad/memory-zero:t: field `memory`: '0' is too little memory: at "
        "least 16M (a kernel and its initramfs need room)",
    ),
    "cpus": (
        f'kernel_baseline(name="t", kernel="{KERNEL}", cpus=0)',
        "guests_bad/cpus:t: field `cpus`: must be greater than 0, but was 0",
    ),
    "timeout": (
        f'kernel_baseline(name="t", kernel="{KERNEL}", timeout=-5)',
        "guests_bad/timeout:t: field `timeout`: must be greater than 0, but was -5",
    ),
    "app-timeout": (
        'app_profile(name="t", baseline="//guests:minimal", workload="w.sh", timeout=0)',
        "guests_bad/app-timeout:t: field `timeout`: must be greater than 0, but was 0",
    ),
    "cmdline": (
        f'kernel_baseline(name="t", kernel="{KERNEL}", cmdline="console=ttyS0 " + "x" * 2002)',
        "guests_bad/cmdline:t: field `cmdline`: the kernel command line is too long: "
        "2016 bytes, 2048 with what kernel_rules appends ('nokaslr "
        "kernel_rules.mode=check'), but the kernel keeps only 2047 (x86 "
        "COMMAND_LINE_SIZE) and silently drops the rest, `kernel_rules.mode=check` "
        "included; at most 2015 bytes",
    ),
}

# kernel_image's boot fields, refused by `pants test` before anything is built or booted.
BOOT_FIELDS = """
kernel_image(name="memory", source="//third_party/linux:linux-6.1", memory="-5M")
kernel_image(name="timeout", source="//third_party/linux:linux-6.1", boot_timeout=-5)
kernel_image(name="cmdline", source="//third_party/linux:linux-6.1", cmdline="console=ttyS0 " + "x" * 2020)
"""


@pytest.fixture(scope="module")
def guests(ws):
    d = ws.root / "guests"
    d.mkdir()
    (d / "BUILD").write_text(GUESTS)
    (d / "exit7.sh").write_text('echo "boot step: about to fail"\nexit 7\n')
    (d / "silent.sh").write_text("true\n")
    (d / "hung.sh").write_text(
        "echo 'waiting for a writer that never comes'\nmkfifo /tmp/never\ncat /tmp/never\n"
    )
    (d / "data").mkdir()
    (d / "data/a=b.txt").write_text("contents of a=b\n")
    (d / "equals.sh").write_text("cat /app/data/a=b.txt\nexit 5\n")
    bad = ws.root / "guests_bad"
    for name, (build, _) in PARSE_TIME.items():
        (bad / name).mkdir(parents=True)
        (bad / name / "BUILD").write_text(build + "\n")
        (bad / name / "w.sh").write_text("true\n")
    (bad / "boot").mkdir()
    (bad / "boot/BUILD").write_text(BOOT_FIELDS)
    built = ws.pants("package", KERNEL)
    assert built.returncode == 0, built.output[-5000:]
    return d


def _failed(ws, *args: str) -> str:
    result = ws.pants(*args)
    assert result.returncode != 0, result.output[-3000:]
    assert "Traceback (most recent call last)" not in result.output, result.output[-5000:]
    return result.output


@pytest.mark.parametrize("case", sorted(PARSE_TIME))
def test_bad_field_is_refused_when_the_build_file_is_read(ws, guests, case):
    result = ws.pants("package", f"guests_bad/{case}:t")
    assert result.returncode != 0
    assert PARSE_TIME[case][1] in result.output, result.output[-3000:]
    assert "Starting:" not in result.output  # nothing was built or run


@pytest.mark.parametrize(
    "target, expected",
    [
        ("memory", "guests_bad/boot:memory: field `memory`: '-5M' is not a memory size"),
        (
            "timeout",
            "guests_bad/boot:timeout: field `boot_timeout`: must be greater than 0, but was -5",
        ),
        (
            "cmdline",
            "guests_bad/boot:cmdline: field `cmdline`: the kernel command line is too "
            "long: 2034 bytes, 2058 with what kernel_rules appends "
            "('kernel_rules.mode=check')",
        ),
    ],
)
def test_bad_boot_field_of_a_kernel_image_is_refused_before_booting(ws, guests, target, expected):
    output = _failed(ws, "test", f"guests_bad/boot:{target}")
    assert expected in output, output[-3000:]
    assert "Starting: Build kernel" not in output and "Starting: Boot" not in output


def test_a_silent_workload_no_longer_passes_on_a_kernel_message(ws, guests):
    output = _failed(ws, "package", "guests:silent")
    assert (
        "guests:silent: its output does not match `success` 'Run /init as init process' "
        "(it printed nothing)"
    ) in output, output[-4000:]
    assert "workload output (stdout and stderr):\n  (nothing)" in output
    assert "Run /init as init process" in output  # it is on the console, shown in its tail


def test_a_failing_boot_script_fails_the_baseline(ws, guests):
    output = _failed(ws, "package", "guests:boot-exit-7")
    assert (
        "guests:boot-exit-7: kernel_rules: tracing failed: the boot step (`boot_script`) "
        "exited with status 7"
    ) in output, output[-4000:]
    assert "boot step: about to fail" in output  # the console tail
    assert not (ws.root / "dist/guests/boot-exit-7/config-set.json").exists()
    assert "Starting: Map the trace" not in output


def test_qemus_error_for_a_machine_it_does_not_know(ws, guests):
    output = _failed(ws, "package", "guests:bad-machine")
    assert (
        "guests:bad-machine: kernel_rules: tracing failed: QEMU exited with code 1 before "
        "the guest's init marker; QEMU's error output:"
    ) in output, output[-4000:]
    assert "unsupported machine type" in output


def test_an_app_on_a_machine_qemu_refuses_fails_at_once_with_qemus_error(ws, guests):
    start = time.monotonic()
    output = _failed(ws, "package", "guests:app-on-bad-machine")
    assert "QEMU exited with code 1 before the guest reached the application window" in output
    assert "unsupported machine type" in output and "gdbstub" not in output
    assert time.monotonic() - start < 120  # no 30 s wait for the gdbstub (pants starts in ~20)


def test_a_hung_workload_shows_what_it_printed_so_far(ws, guests):
    output = _failed(ws, "package", "guests:hung")
    assert "tracing failed: the workload did not finish within 45 s" in output, output[-4000:]
    assert "workload output so far:\n  | waiting for a writer that never comes" in output


def test_a_file_whose_name_holds_an_equals_sign_reaches_the_guest(ws, guests):
    output = _failed(ws, "package", "guests:equals")
    assert "guests:equals: the workload exited with status 5" in output, output[-4000:]
    assert "workload output (stdout and stderr):\n  | contents of a=b" in output


def _descendants(pid: int) -> List[int]:
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_pants_run_killed_from_its_client_takes_qemu_with_it(ws, guests):
    """Without pantsd the QEMU of `pants run` is the client's own grandchild: killing the client
    (kill -9) must not leave it running on the terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTS_")}
    env["NO_SCIE_WARNING"] = "1"
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ws.root)
        os.execve(
            str(REPO / ".venv/bin/pants"),
            [
                "pants",
                "--no-pantsd",
                f"--named-caches-dir={ws.named_caches}",
                f"--local-store-dir={ws.store}",
                "--no-colors",
                "run",
                KERNEL.lstrip("/"),
            ],
            env,
        )
    qemu: List[int] = []
    try:
        buf, deadline = b"", time.monotonic() + 600
        while time.monotonic() < deadline and b"busybox shell" not in buf:
            if select.select([fd], [], [], 1)[0]:
                try:
                    buf += os.read(fd, 65536)
                except OSError:
                    break
        assert b"busybox shell" in buf, buf.decode(errors="replace")[-3000:]
        qemu = [
            p
            for p in _descendants(pid)
            if "qemu-system-x86_64 " in _cmdline(p)
            and "kernel_rules/domain/guest/guard.py" not in _cmdline(p)
        ]
        assert qemu, "no QEMU under the pants client"
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in qemu):
            time.sleep(0.2)
        assert not any(_alive(p) for p in qemu), "QEMU outlived the killed pants client"
    finally:
        for p in qemu:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
