"""QEMU command lines and boots that wait for a marker on the serial console.

Every guest is isolated: `-nodefaults -no-user-config`, no network device (`-nic none`), no shared
host directory, the serial console on stdio, and `-no-reboot` so that the guest's `reboot -f`
ends QEMU. Kernels are booted with `nokaslr` so that addresses stay comparable between runs.

Acceleration: TCG always works. KVM is used only when `/dev/kvm` opens *and* a probe boot reaches
the marker (some hosts expose `/dev/kvm` but cannot run an ordinary guest).

Run as `python3 -m kernel_rules.domain.qemu boot --qemu PATH --kernel F --initrd F ...`: exits 0
when the marker appeared, 1 otherwise, and writes the whole console log to `--console`.
"""

from __future__ import annotations

import argparse
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

INIT_MARKER = "KERNEL_RULES_INIT_OK"
CHECK_PARAM = "kernel_rules.mode=check"


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
    argv = [spec.qemu, "-nodefaults", "-no-user-config", "-machine", m.machine,
            "-accel", spec.accel, "-smp", str(m.cpus), "-m", m.memory,
            "-display", "none", "-serial", "stdio", "-nic", "none", "-no-reboot",
            "-kernel", spec.kernel, "-initrd", spec.initrd, "-append", spec.cmdline]
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


def watch_console(argv: List[str], timeout: float,
                  on_output: Callable[[bytes, subprocess.Popen], Optional[float]],
                  stdin: int = subprocess.DEVNULL) -> Tuple[bytes, bool, subprocess.Popen]:
    """Run QEMU (`argv`, console on stdout) until it exits or `timeout` seconds pass, calling
    `on_output(everything so far, process)` after each chunk; when it returns a number, QEMU gets
    at most that many more seconds. Returns (console bytes, timed out, the finished process)."""
    proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf, deadline, timed_out = b"", time.monotonic() + timeout, True
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.2):
                if proc.poll() is not None:
                    timed_out = False
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                timed_out = False
                break
            buf += chunk
            grace = on_output(buf, proc)
            if grace is not None:
                deadline = min(deadline, time.monotonic() + grace)
                timed_out = False
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return buf, timed_out, proc


def boot_until(spec: BootSpec, marker: str, timeout: float) -> BootResult:
    """Boot `spec`; succeed when `marker` appears on the console, then let the guest finish
    (it is expected to `reboot -f`) for a few seconds before QEMU is stopped."""
    start = time.monotonic()
    seen: List[float] = []

    def on_output(buf: bytes, _proc) -> Optional[float]:
        if not seen and marker.encode() in buf:
            seen.append(time.monotonic() - start)
            return 5.0
        return None

    buf, _timed_out, proc = watch_console(command_line(spec), timeout, on_output)
    console = buf.decode(errors="replace")
    if seen:
        return BootResult(True, console, round(seen[0], 2), "marker seen")
    why = f"QEMU exited with code {proc.returncode}" if proc.returncode not in (None, -9) \
        else f"no marker within {timeout:.0f} s"
    return BootResult(False, console, None, why)


def choose_accel(spec: BootSpec, requested: str, marker: str) -> Tuple[str, str]:
    """("kvm"|"tcg", why). `auto` probes KVM with a real boot of `spec` and falls back to TCG."""
    if requested in ("tcg", "kvm"):
        return requested, "requested"
    if not kvm_usable():
        return "tcg", "/dev/kvm not usable"
    probe = boot_until(BootSpec(**{**spec.__dict__, "accel": "kvm"}), marker, timeout=30)
    return ("kvm", "KVM probe boot succeeded") if probe.ok else \
        ("tcg", f"KVM probe boot failed ({probe.reason})")


def console_tail(console: str, lines: int = 40) -> str:
    return "\n".join(console.splitlines()[-lines:])


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="qemu", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("boot")
    b.add_argument("--qemu", required=True)
    b.add_argument("--kernel", required=True)
    b.add_argument("--initrd", required=True)
    b.add_argument("--cmdline", default="console=ttyS0")
    b.add_argument("--machine", default="q35")
    b.add_argument("--cpus", type=int, default=1)
    b.add_argument("--memory", default="256M")
    b.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto")
    b.add_argument("--marker", default=INIT_MARKER)
    b.add_argument("--timeout", type=float, default=120)
    b.add_argument("--console", required=True)
    args = p.parse_args(argv)
    spec = BootSpec(args.qemu, args.kernel, args.initrd, args.cmdline,
                    Machine(args.machine, args.cpus, args.memory))
    accel, why = choose_accel(spec, args.accel, args.marker)
    print(f"kernel_rules: QEMU accelerator {accel} ({why})", file=sys.stderr)
    result = boot_until(BootSpec(**{**spec.__dict__, "accel": accel}), args.marker, args.timeout)
    with open(args.console, "w") as f:
        f.write(result.console)
    if result.ok:
        print(f"kernel_rules: init marker reached after {result.seconds_to_marker} s ({accel})")
        return 0
    print(f"kernel_rules: boot failed: {result.reason}; console tail:\n"
          f"{console_tail(result.console)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
