"""QEMU command lines and boots that wait for a marker on the serial console.

Every guest is isolated: `-nodefaults -no-user-config`, no network device (`-nic none`), no shared
host directory, the serial console on stdio, and `-no-reboot` so that the guest's `reboot -f`
ends QEMU. Kernels are booted with `nokaslr` so that addresses stay comparable between runs.

Acceleration: TCG always works. KVM is used only when `/dev/kvm` opens *and* a probe boot reaches
the marker (some hosts expose `/dev/kvm` but cannot run an ordinary guest).

Check boots (`kernel_rules.mode=check` on the command line) end with the guest's confirmation,
a line `KR_MODE check boot_script=<none|status>` printed after the init marker (see
domain.guest.protocol, and its check_problem): a boot passes only when the guest says it ran in check mode and its boot step,
if it had one, exited 0. A guest that says `KR_MODE interactive` (the kernel dropped the parameter,
e.g. from a command line longer than the kernel keeps) is stopped at once instead of sitting in a
shell until the timeout. QEMU's own error output is kept apart from the console and is part of
every failure's reason.

Run as `python3 -m kernel_rules.domain.guest.qemu boot --qemu PATH --kernel F --initrd F ...`: exits 0
when the guest confirmed its check boot, 1 otherwise, and writes the whole console log to
`--console`. Interactive runs (`pants run`) go through `guest.guard` instead.
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from kernel_rules.domain.guest.protocol import (
    CHECK_PARAM,
    COMMAND_LINE_SIZE,
    INIT_MARKER,
    MODE,
    check_problem,
    console_tail,
    interactive,
)

# The most kernel_rules itself appends to a target's `cmdline` (boot traces).
APPENDED_TO_CMDLINE = f" nokaslr {CHECK_PARAM}"
MIN_MEMORY_MIB = 16
_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)([kKmMgGtT]?)[bB]?")
_MIB_PER_UNIT = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


def memory_problem(value: str) -> str:
    """Why `value` is not a guest memory size for QEMU's `-m` (a number of MiB, or a number with a
    K, M, G or T suffix, at least `MIN_MEMORY_MIB` MiB); empty when it is one."""
    m = _MEMORY.fullmatch(value.strip()) if isinstance(value, str) else None
    if not m:
        return (
            f"{value!r} is not a memory size: expected a number of MiB or a number with a "
            "K, M, G or T suffix, such as `256M` or `1G`"
        )
    mib = float(m.group(1)) * _MIB_PER_UNIT[m.group(2).lower()]
    if mib < MIN_MEMORY_MIB:
        return (
            f"{value!r} is too little memory: at least {MIN_MEMORY_MIB}M (a kernel and its "
            "initramfs need room)"
        )
    return ""


def cmdline_problem(cmdline: str, appended: str = APPENDED_TO_CMDLINE) -> str:
    """Why `cmdline`, with `appended` after it, would not reach the kernel whole; empty when it
    fits in `COMMAND_LINE_SIZE`."""
    size = len((cmdline + appended).encode())
    if size < COMMAND_LINE_SIZE:
        return ""
    room = COMMAND_LINE_SIZE - 1 - len(appended.encode())
    added = (
        f", {size} with what kernel_rules appends ({appended.strip()!r})"
        if appended.strip()
        else ""
    )
    return (
        f"the kernel command line is too long: {len(cmdline.encode())} bytes{added}, but "
        f"the kernel keeps only {COMMAND_LINE_SIZE - 1} (x86 COMMAND_LINE_SIZE) and silently "
        f"drops the rest, `{CHECK_PARAM}` included; at most {room} bytes"
    )


def with_qemu_stderr(reason: str, stderr: str, lines: int = 20) -> str:
    """`reason`, followed by QEMU's own error output (its last `lines` lines) when it printed any."""
    text = stderr.strip()
    if not text:
        return reason
    tail = text.splitlines()[-lines:]
    return f"{reason}; QEMU's error output:\n" + "\n".join("  " + line for line in tail)


@dataclass(frozen=True)
class Machine:
    """A QEMU x86_64 machine: type, CPUs, memory and extra device arguments."""

    machine: str = "q35"
    cpus: int = 1
    memory: str = "256M"
    devices: Tuple[str, ...] = ()


@dataclass(frozen=True)
class BootSpec:
    qemu: str
    kernel: str
    initrd: str
    cmdline: str = "console=ttyS0"
    machine: Machine = field(default_factory=Machine)
    accel: str = "tcg"  # "tcg" or "kvm"


def command_line(spec: BootSpec) -> List[str]:
    """The QEMU argv for `spec` (no shell involved; every value is its own argument)."""
    m = spec.machine
    argv = [
        spec.qemu,
        "-nodefaults",
        "-no-user-config",
        "-machine",
        m.machine,
        "-accel",
        spec.accel,
        "-smp",
        str(m.cpus),
        "-m",
        m.memory,
        "-display",
        "none",
        "-serial",
        "stdio",
        "-nic",
        "none",
        "-no-reboot",
        "-kernel",
        spec.kernel,
        "-initrd",
        spec.initrd,
        "-append",
        spec.cmdline,
    ]
    if spec.accel == "kvm":
        argv += ["-cpu", "host"]
    for dev in m.devices:
        argv += ["-device", dev]
    return argv


def kvm_usable() -> bool:
    """True when /dev/kvm can be opened read-write (necessary, not sufficient: probe too)."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class BootResult:
    ok: bool
    console: str
    seconds_to_marker: Optional[float]
    reason: str


@dataclass(frozen=True)
class ConsoleRun:
    """A finished QEMU run: its console (stdout), whether it ran out of time, QEMU's exit code
    (negative: the signal that ended it) and its own error output (stderr)."""

    console: bytes
    timed_out: bool
    returncode: Optional[int]
    stderr: str
    stalled: bool = False  # stopped because `must_see` did not appear in time


STDERR_LIMIT = 65536


def watch_console(
    argv: List[str],
    timeout: float,
    on_output: Callable[[bytes, subprocess.Popen], Optional[float]],
    stdin: int = subprocess.DEVNULL,
    on_timeout: Optional[Callable[[subprocess.Popen], Optional[float]]] = None,
    must_see: Optional[Tuple[bytes, float]] = None,
) -> ConsoleRun:
    """Run QEMU (`argv`, console on stdout) until it exits or `timeout` seconds pass, calling
    `on_output(everything so far, process)` after each chunk; when it returns a number, QEMU gets
    at most that many more seconds (and the run does not count as timed out). When `timeout`
    passes first, `on_timeout(process)` (if given) is called once: a number it returns gives QEMU
    that many more seconds (to report, say) before it is killed; the run counts as timed out.
    QEMU's stderr is collected apart from the console (its last `STDERR_LIMIT` bytes).
    `must_see=(text, seconds)`: stop early (the run counts as stalled) when `text` has not
    appeared on the console within `seconds`."""
    proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    buf, err = b"", b""
    started = time.monotonic()
    deadline, timed_out, finishing, stalled = started + timeout, False, False, False
    try:
        while True:
            if must_see and must_see[0] not in buf and time.monotonic() - started >= must_see[1]:
                stalled = True
                break
            if time.monotonic() >= deadline:
                if finishing or timed_out:
                    break
                timed_out = True
                grace = on_timeout(proc) if on_timeout is not None else None
                if grace is None:
                    break
                deadline = time.monotonic() + grace
            events = sel.select(timeout=0.2)
            if not events and proc.poll() is not None:
                break
            eof = False
            for key, _ in events:
                chunk = os.read(key.fileobj.fileno(), 65536)
                if key.data == "err":
                    if chunk:
                        err = (err + chunk)[-STDERR_LIMIT:]
                    else:
                        sel.unregister(key.fileobj)
                    continue
                if not chunk:
                    eof = True
                    break
                buf += chunk
                grace = on_output(buf, proc)
                if grace is not None:
                    deadline = min(deadline, time.monotonic() + grace)
                    finishing = finishing or not timed_out
            if eof:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err = (err + proc.stderr.read())[-STDERR_LIMIT:]
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    return ConsoleRun(buf, timed_out, proc.returncode, err.decode(errors="replace"), stalled)


def boot_until(spec: BootSpec, marker: str, timeout: float) -> BootResult:
    """Boot `spec` (a check boot: its command line has `CHECK_PARAM`) until the guest confirms
    the check after `marker` (see `check_problem`), then let it power off for a few seconds before
    QEMU is stopped. A guest that says it is interactive is stopped at once."""
    start = time.monotonic()
    seen: List[float] = []

    def on_output(buf: bytes, _proc) -> Optional[float]:
        if not seen and marker.encode() in buf:
            seen.append(time.monotonic() - start)
        if seen:
            text = buf.decode(errors="replace")
            if interactive(text):
                return 0.0
            if MODE.search(text.replace("\r", "")):
                return 5.0
            return 15.0  # the confirmation follows the marker at once
        return None

    run = watch_console(command_line(spec), timeout, on_output)
    console = run.console.decode(errors="replace")
    if not seen:
        why = (
            f"QEMU exited with code {run.returncode} before the init marker"
            if run.returncode not in (None, -9)
            else f"no marker within {timeout:.0f} s"
        )
        return BootResult(False, console, None, with_qemu_stderr(why, run.stderr))
    problem = check_problem(console, marker)
    if problem:
        return BootResult(False, console, round(seen[0], 2), with_qemu_stderr(problem, run.stderr))
    return BootResult(True, console, round(seen[0], 2), "marker seen, check confirmed")


def choose_accel(spec: BootSpec, requested: str, marker: str) -> Tuple[str, str]:
    """("kvm"|"tcg", why). `auto` probes KVM with a real boot of `spec` and falls back to TCG."""
    if requested in ("tcg", "kvm"):
        return requested, "requested"
    if not kvm_usable():
        return "tcg", "/dev/kvm not usable"
    probe = boot_until(BootSpec(**{**spec.__dict__, "accel": "kvm"}), marker, timeout=30)
    return (
        ("kvm", "KVM probe boot succeeded")
        if probe.ok
        else ("tcg", f"KVM probe boot failed ({probe.reason})")
    )


def add_machine_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every guest step takes for its QEMU and its machine: --qemu, --kernel,
    --cmdline, --machine, --cpus, --memory and --device (see `machine_of`)."""
    parser.add_argument("--qemu", required=True)
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--cmdline", default="console=ttyS0")
    parser.add_argument("--machine", default="q35")
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--memory", default="256M")
    parser.add_argument("--device", action="append", default=[])


def machine_of(args: argparse.Namespace) -> Machine:
    """The Machine of options added by `add_machine_arguments`."""
    return Machine(args.machine, args.cpus, args.memory, tuple(args.device))


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="qemu", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("boot")
    add_machine_arguments(b)
    b.add_argument("--initrd", required=True)
    b.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto")
    b.add_argument("--marker", default=INIT_MARKER)
    b.add_argument("--timeout", type=float, default=120)
    b.add_argument("--console", required=True)
    args = p.parse_args(argv)
    problem = cmdline_problem(args.cmdline, "")
    if problem:
        print(f"kernel_rules: boot refused: {problem}", file=sys.stderr)
        return 1
    spec = BootSpec(
        args.qemu,
        args.kernel,
        args.initrd,
        args.cmdline,
        machine_of(args),
    )
    accel, why = choose_accel(spec, args.accel, args.marker)
    print(f"kernel_rules: QEMU accelerator {accel} ({why})", file=sys.stderr)
    result = boot_until(BootSpec(**{**spec.__dict__, "accel": accel}), args.marker, args.timeout)
    with open(args.console, "w") as f:
        f.write(result.console)
    if result.ok:
        print(f"kernel_rules: init marker reached after {result.seconds_to_marker} s ({accel})")
        return 0
    print(
        f"kernel_rules: boot failed: {result.reason}; console tail:\n"
        f"{console_tail(result.console)}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(list(sys.argv[1:])))
