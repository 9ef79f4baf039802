"""Run a guest under QEMU (TCG) with instruction logging and keep the kernel addresses it executed.

`boot` traces a whole boot, from the first instruction, until the guest's init prints the
marker and powers off. The run is deterministic: `-icount` ties the virtual clock to the
instruction count, the RTC runs on that clock from a fixed date, and the console goes to a file,
so the same inputs give the same trace.

`app` traces the application window of a guest whose init (see domain.guest_init) runs the
`WINDOW_BEGIN` marker, the workload and the `WINDOW_END` marker. QEMU starts stopped (`-S`) with
its gdbstub on a socket; the tracer sets a breakpoint at `WINDOW_BEGIN` and lets the guest run.
A breakpoint stops the virtual CPU before that instruction, at the same instruction count on
every run; while it is stopped, the tracer switches QEMU's log to `in_asm,nochain` through the HMP
monitor (so every block executed from then on is translated and logged again, even code that ran
at boot), removes the breakpoint and continues. The guest never waits for the host, the console
goes to a file, and the whole run is under `-icount`: it is as deterministic as a boot trace.

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
from kernel_rules.domain.gdbstub import GdbClient, GdbError
from kernel_rules.domain.modules import parse_sections
from kernel_rules.domain.qemu import (
    INIT_MARKER, BootSpec, Machine, command_line, console_tail)

WINDOW_REQUEST = "KR_WINDOW_REQUEST"
WORKLOAD_STATUS = re.compile(r"KR_WORKLOAD_STATUS (\d+)")
MODULE_LINE = re.compile(r"^KR_MODULE (\S+) \d+ \d+ \S+ \S+ (0x[0-9a-f]+)", re.M)
DONE = "KR_DONE"
DETERMINISM = ["-icount", "shift=5,sleep=off,align=off", "-rtc", "base=2000-01-01T00:00:00,clock=vm",
               "-seed", "1"]  # guest randomness (virtio-rng, RDRAND) from a fixed seed


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


def trace_app(spec: BootSpec, workdir: str, timeout: float) -> dict:
    log = os.path.join(workdir, "qemu.log")
    mon = os.path.join(workdir, "mon.sock")
    gdb = os.path.join(workdir, "gdb.sock")
    console = os.path.join(workdir, "console.raw")
    argv = _argv(spec, log, f"file:{console}", [
        *DETERMINISM, "-S", "-gdb", f"unix:{gdb},server=on,wait=off",
        "-monitor", f"unix:{mon},server=on,wait=off"])
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    text, reason, toggled, deadline = "", "", False, time.monotonic() + timeout
    try:
        client = GdbClient(gdb)
        client.command("?")  # started with -S: stopped before the first instruction
        client.set_breakpoint(tr.WINDOW_BEGIN)
        client.send("c")
        while True:
            if time.monotonic() > deadline:
                reason = f"the workload did not finish within {timeout:.0f} s"
                break
            stop = client.reply(0.05) if not toggled else None
            if stop is not None and stop[:1] in ("T", "S"):
                # Stopped at the first instruction of the window, at the same instruction count
                # on every run: switch logging on, then let the guest go on.
                _hmp(mon, "log in_asm,nochain")
                client.remove_breakpoint(tr.WINDOW_BEGIN)
                client.send("c")
                toggled = True
            if os.path.exists(console):
                with open(console, errors="replace") as f:
                    text = f.read()
            if proc.poll() is not None:
                break
            if DONE in text:
                deadline = min(deadline, time.monotonic() + 10)
            if toggled:
                time.sleep(0.05)
        client.close()
    except (GdbError, OSError) as e:
        reason = f"driving QEMU failed: {e}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if os.path.exists(console):
        with open(console, errors="replace") as f:
            text = f.read()
        os.unlink(console)
    with open(log, errors="replace") as f:
        t = tr.window_addresses(f)
    os.unlink(log)
    status = WORKLOAD_STATUS.search(text)
    if not reason:
        if not toggled:
            reason = "the guest never reached the application window (init failed?)"
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
