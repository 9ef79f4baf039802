"""Run a guest under QEMU (TCG) with instruction logging and keep the kernel addresses it executed.

`boot` traces a whole boot, from the first instruction, until the guest's init prints the
marker and powers off. The run is deterministic: `-icount` ties the virtual clock to the
instruction count, the RTC runs on that clock from a fixed date, and the console goes to a file,
so the same inputs give the same trace.

`app` traces the application window of a guest whose init (see domain.guest_init) prints
`KR_WINDOW_REQUEST`, stops the VM (`kr-window-stop` writes to QEMU's pvpanic device, which this
run gives `-action panic=pause`), then runs the `WINDOW_BEGIN` marker, the workload and the
`WINDOW_END` marker. While the VM is paused the tracer switches QEMU's log to `in_asm,nochain`
through the HMP monitor (so every block executed from then on is translated and logged again,
even code that ran at boot) and lets it go on. The guest never waits for the host: with
`-icount` the whole run, window included, is as deterministic as a boot trace.

Outputs (in --out): `addresses.txt` (sorted hex kernel addresses, modules' included), `trace.json`
(counts, window, module list, workload status, where each loaded module's code sections were as
the guest printed them) and `console.log`. Exit code 0 when the guest finished as expected,
1 otherwise (the reason and the console tail on stderr). The raw QEMU log is deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from typing import List, Optional, Sequence, Tuple

from kernel_rules.domain import trace as tr
from kernel_rules.domain.modules import parse_sections
from kernel_rules.domain.qemu import (
    INIT_MARKER, BootSpec, Machine, command_line, console_tail)

WINDOW_REQUEST = "KR_WINDOW_REQUEST"
STOP_FAILED = "KR_STOP_FAILED"
STOP_DEVICE = ["-device", "pvpanic", "-action", "panic=pause"]
WORKLOAD_STATUS = re.compile(r"KR_WORKLOAD_STATUS (\d+)")
MODULE_LINE = re.compile(r"^KR_MODULE (\S+) \d+ \d+ \S+ \S+ (0x[0-9a-f]+)", re.M)
DONE = "KR_DONE"
DETERMINISM = ["-icount", "shift=5,sleep=off,align=off", "-rtc", "base=2000-01-01T00:00:00,clock=vm"]


def _argv(spec: BootSpec, log: str, serial: str, extra: Sequence[str] = ()) -> List[str]:
    argv = command_line(spec)
    argv[argv.index("-serial") + 1] = serial
    return argv + ["-d", "in_asm", "-D", log, *extra]


def trace_boot(spec: BootSpec, workdir: str, timeout: float) -> dict:
    log, console = os.path.join(workdir, "qemu.log"), os.path.join(workdir, "console.log")
    argv = _argv(spec, log, f"file:{console}", DETERMINISM)
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    text = open(console, errors="replace").read() if os.path.exists(console) else ""
    ok = INIT_MARKER in text
    with open(log, errors="replace") as f:
        t = tr.kernel_addresses(f)
    os.unlink(log)
    reason = "" if ok else (f"no init marker within {timeout:.0f} s" if timed_out
                            else "the guest stopped before its init marker")
    return {"ok": ok, "reason": reason, "trace": t, "console": text, "window": None}


def _wait_paused(sock_path: str, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if "paused" in _hmp(sock_path, "info status"):
            return True
        time.sleep(0.05)
    return False


def _hmp(sock_path: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock_path)
        buf = b""
        while b"(qemu)" not in buf:
            buf += s.recv(4096)
        s.sendall(command.encode() + b"\n")
        buf = b""
        while buf.count(b"(qemu)") < 1:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf.decode(errors="replace")


def _watch_console_file(argv: List[str], console: str, timeout: float, on_output
                        ) -> Tuple[bytes, bool]:
    """Like qemu.watch_console, but the guest's serial console goes to the file `console`, which
    is polled: a console that never blocks keeps the guest's run independent of the host."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    buf, deadline, timed_out, seen = b"", time.monotonic() + timeout, True, 0
    try:
        while time.monotonic() < deadline:
            exited = proc.poll() is not None
            if os.path.exists(console):
                with open(console, "rb") as f:
                    buf = f.read()
            if len(buf) != seen:
                seen = len(buf)
                grace = on_output(buf, proc)
                if grace is not None:
                    deadline = min(deadline, time.monotonic() + grace)
                    timed_out = False
            if exited:
                timed_out = False
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return buf, timed_out


def trace_app(spec: BootSpec, workdir: str, timeout: float) -> dict:
    log = os.path.join(workdir, "qemu.log")
    mon = os.path.join(workdir, "mon.sock")
    console = os.path.join(workdir, "console.raw")
    argv = _argv(spec, log, f"file:{console}", [*DETERMINISM, *STOP_DEVICE,
                                                "-monitor", f"unix:{mon},server=on,wait=off"])
    toggled: List[bool] = []
    failed: List[str] = []

    def on_output(buf: bytes, proc: subprocess.Popen) -> Optional[float]:
        if STOP_FAILED.encode() in buf and not failed:
            failed.append("the guest could not stop itself for the window (kr-window-stop needs "
                          "CONFIG_X86_IOPL_IOPERM=y in the trace kernel)")
            return 0.0
        if not toggled and WINDOW_REQUEST.encode() in buf:
            if not _wait_paused(mon):
                failed.append("the guest asked for the window but did not pause")
                return 0.0
            _hmp(mon, "log in_asm,nochain")  # while paused: the window starts after this
            _hmp(mon, "cont")
            toggled.append(True)
        return 10.0 if DONE.encode() in buf else None

    buf, timed_out = _watch_console_file(argv, console, timeout, on_output)
    if os.path.exists(console):
        os.unlink(console)
    reason = failed[0] if failed else (
        f"the workload did not finish within {timeout:.0f} s" if timed_out else "")
    text = buf.decode(errors="replace")
    with open(log, errors="replace") as f:
        t = tr.window_addresses(f)
    os.unlink(log)
    status = WORKLOAD_STATUS.search(text)
    if not reason:
        if not toggled:
            reason = "the guest never asked for the application window (init failed?)"
        elif status is None:
            reason = "the guest stopped before the workload finished"
        elif not t.window_found:
            reason = "the window markers were not found in the trace"
    modules = [{"name": n, "address": a} for n, a in MODULE_LINE.findall(text)]
    window = {"workload_status": int(status.group(1)) if status else None, "modules": modules}
    return {"ok": not reason, "reason": reason, "trace": t, "console": text, "window": window}


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="tracer", description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("boot", "app"))
    p.add_argument("--qemu", required=True)
    p.add_argument("--kernel", required=True)
    p.add_argument("--initrd", required=True)
    p.add_argument("--cmdline", required=True)
    p.add_argument("--machine", default="q35")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--memory", default="256M")
    p.add_argument("--device", action="append", default=[])
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    spec = BootSpec(args.qemu, args.kernel, args.initrd, args.cmdline,
                    Machine(args.machine, args.cpus, args.memory, tuple(args.device)), "tcg")
    run = (trace_boot if args.mode == "boot" else trace_app)(spec, args.out, args.timeout)
    t: tr.Trace = run["trace"]
    with open(os.path.join(args.out, "addresses.txt"), "w") as f:
        f.writelines(f"{a:x}\n" for a in sorted(t.kernel))
    with open(os.path.join(args.out, "console.log"), "w") as f:
        f.write(run["console"])
    with open(os.path.join(args.out, "trace.json"), "w") as f:
        json.dump({"mode": args.mode, "addresses": len(t.kernel),
                   "pre_kernel_instructions": t.pre_kernel_instructions,
                   "window": run["window"], "module_sections": parse_sections(run["console"])},
                  f, indent=2, sort_keys=True)
    if not run["ok"]:
        print(f"kernel_rules: tracing failed: {run['reason']}; console tail:\n"
              f"{console_tail(run['console'])}", file=sys.stderr)
        return 1
    print(f"kernel_rules: traced {len(t.kernel)} kernel addresses", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
