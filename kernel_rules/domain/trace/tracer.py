"""Run a guest under QEMU (TCG) with instruction logging and keep the kernel addresses it executed.

`boot` traces a whole boot, from the first instruction, until the guest's init prints the
marker and powers off. The run is deterministic: `-icount` ties the virtual clock to the
instruction count, the RTC runs on that clock from a fixed date, and the console goes to a file,
so the same inputs give the same trace. The baseline's /init runs the `USERSPACE_BEGIN` marker
as its first command; QEMU starts stopped (`-S`) with its gdbstub on a socket, and the tracer
stops the guest there exactly as it stops an app at its window (below) and logs every block
again from then on: addresses logged before that point are the boot's *init* phase (kernel
initialisation), those after it its *boot* phase (the user-space boot), each complete
(domain.trace.log.kernel_addresses). A guest that never runs the marker fails the trace.

A boot trace passes only when the guest confirms that it ran in check mode and that its boot
step (the baseline's `boot_script`), if any, exited 0 (domain.guest.protocol.check_problem); a
guest that says it is interactive is stopped at once.

`app` traces the application window of a guest whose init (see domain.guest.init) runs the
`WINDOW_BEGIN` marker, the workload and the `WINDOW_END` marker. QEMU starts stopped (`-S`) with
its gdbstub on a socket; the tracer sets a breakpoint at `WINDOW_BEGIN` and lets the guest run.
A breakpoint stops the virtual CPU before that instruction, at the same instruction count on
every run; while it is stopped, the tracer switches QEMU's log to `in_asm,nochain` through the HMP
monitor (so every block executed from then on is translated and logged again, even code that ran
at boot), removes the breakpoint and continues. The guest never waits for the host, the console
goes to a file (QEMU's stdout), and the whole run is under `-icount`: it is as deterministic as a
boot trace. The workload's status and output come only from the guest's framed report
(domain.guest.protocol.workload_report); when the timeout passes, the tracer asks the guest for the
output so far (a `KR_DUMP` line on the console's input, which stays silent otherwise).

QEMU's stderr is kept (`qemu.stderr`) and is part of every failure's reason; a QEMU that exits
before its gdbstub accepts a connection fails the trace at once.

Outputs (in --out): `addresses.txt` (sorted hex kernel addresses, modules' included, one a line,
each followed by a space and its phases, comma-separated and sorted: `ffffffff81000000 boot,init`;
an app's are all `app`), `trace.json`
(counts, window, module list, workload status, where each loaded module's code sections were as
the guest printed them), `console.log` and, for an app, `workload.log` (the workload's own output,
decoded from its report). Exit code 0 when the guest finished as expected, 1 otherwise (the
reason and the console tail on stderr). The raw QEMU log is deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from typing import List, Optional, Sequence

from kernel_rules.domain.trace import log as tr
from kernel_rules.domain.guest.protocol import (
    DONE,
    DUMP_REQUEST_LINE,
    INIT_MARKER,
    RUNNING_REPORTED,
    USERSPACE_BEGIN_PROGRAM,
    WorkloadReport,
    check_problem,
    console_tail,
    interactive,
    loaded_modules,
    parse_sections,
    workload_report,
)
from kernel_rules.domain.guest.app_check import DUMP_GRACE, failure_details
from kernel_rules.domain.trace.gdbstub import GdbClient, GdbError
from kernel_rules.domain.guest.qemu import (
    BootSpec,
    Machine,
    cmdline_problem,
    command_line,
    with_qemu_stderr,
)

DETERMINISM = [
    "-icount",
    "shift=5,sleep=off,align=off",
    "-rtc",
    "base=2000-01-01T00:00:00,clock=vm",
    "-seed",
    "1",
]  # guest randomness (virtio-rng, RDRAND) from a fixed seed


def trace_argv(spec: BootSpec, log: str, serial: str, extra: Sequence[str] = ()) -> List[str]:
    """The QEMU command line of a traced run of `spec`: its console on `serial`, every translated
    block logged to `log` (`-d in_asm`), then `extra`."""
    argv = command_line(spec)
    argv[argv.index("-serial") + 1] = serial
    return argv + ["-d", "in_asm", "-D", log, *extra]


def _read(path: str) -> str:
    if not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def _log_addresses(log: str, read) -> tr.Trace:
    """The trace in QEMU's log `log` (read with `read`), which is then deleted; an empty trace
    when QEMU never wrote one (it failed to start)."""
    if not os.path.exists(log):
        with open(os.devnull) as f:
            return read(f)
    with open(log, errors="replace") as f:
        t = read(f)
    os.unlink(log)
    return t


def _stopped(gdb: str, mon: str) -> List[str]:
    """QEMU arguments: start stopped, with the gdbstub and the HMP monitor on sockets."""
    return [
        "-S",
        "-gdb",
        f"unix:{gdb},server=on,wait=off",
        "-monitor",
        f"unix:{mon},server=on,wait=off",
    ]


def _log_again_from(client: GdbClient, mon: str, address: int) -> None:
    """The guest is stopped at the breakpoint at `address`, at the same instruction count on
    every run: switch the log to `in_asm,nochain`, remove the breakpoint (QEMU 7.2 flushes its
    translation cache: every block from here on is translated and logged again) and go on."""
    _hmp(mon, "log in_asm,nochain")
    client.remove_breakpoint(address)
    client.send("c")


def _is_stop(reply: Optional[str]) -> bool:
    return reply is not None and reply[:1] in ("T", "S")


def trace_boot(spec: BootSpec, workdir: str, timeout: float) -> dict:
    log, console = os.path.join(workdir, "qemu.log"), os.path.join(workdir, "console.log")
    mon, gdb = os.path.join(workdir, "mon.sock"), os.path.join(workdir, "gdb.sock")
    stderr = os.path.join(workdir, "qemu.stderr")
    argv = trace_argv(spec, log, f"file:{console}", [*DETERMINISM, *_stopped(gdb, mon)])
    timed_out, killed, toggled, reason = False, False, False, ""
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
    deadline = time.monotonic() + timeout
    try:
        client = GdbClient(gdb, alive=lambda: proc.poll() is None)
        client.command("?")  # started with -S: stopped before the first instruction
        client.set_breakpoint(tr.USERSPACE_BEGIN)
        client.send("c")
        while proc.poll() is None:
            if time.monotonic() > deadline:
                timed_out = True
                break
            if interactive(_read(console)):
                break  # it would sit in its shell until the timeout
            if toggled:
                time.sleep(0.2)
            elif _is_stop(client.reply(0.2)):
                _log_again_from(client, mon, tr.USERSPACE_BEGIN)  # init ends, user space begins
                toggled = True
        client.close()
    except (GdbError, OSError) as e:
        if not _exits(proc):
            reason = f"driving QEMU failed: {e}"
    finally:
        if proc.poll() is None:
            proc.kill()
            killed = True
        proc.wait()
    text = _read(console)
    t = _log_addresses(log, tr.kernel_addresses)
    if not reason and INIT_MARKER not in text:
        reason = (
            f"no init marker within {timeout:.0f} s"
            if timed_out
            else f"QEMU exited with code {proc.returncode} before the guest's init marker"
            if not killed and proc.returncode != 0
            else "the guest stopped before its init marker"
        )
    elif not reason:
        reason = check_problem(text) or (
            f"the guest's /init never ran the user-space marker ({USERSPACE_BEGIN_PROGRAM})"
            if not toggled
            else "the user-space marker was not found in the trace"
            if not t.userspace_found
            else ""
        )
        if reason and timed_out:
            reason += f" (the run timed out after {timeout:.0f} s)"
    if reason:
        reason = with_qemu_stderr(reason, _read(stderr))
    os.unlink(stderr)
    return {"ok": not reason, "reason": reason, "trace": t, "console": text, "window": None}


def _exits(proc: subprocess.Popen, grace: float = 5) -> bool:
    """Whether QEMU has exited or exits within `grace` seconds (its gdbstub closes first)."""
    try:
        proc.wait(grace)
        return True
    except subprocess.TimeoutExpired:
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


def trace_app(spec: BootSpec, workdir: str, timeout: float) -> dict:
    log = os.path.join(workdir, "qemu.log")
    mon = os.path.join(workdir, "mon.sock")
    gdb = os.path.join(workdir, "gdb.sock")
    console = os.path.join(workdir, "console.raw")
    stderr = os.path.join(workdir, "qemu.stderr")
    # The console is QEMU's stdout, a file (every write completes at once, as with `file:`), and
    # its input a pipe that stays silent unless the workload runs out of time.
    argv = trace_argv(spec, log, "stdio", [*DETERMINISM, *_stopped(gdb, mon)])
    with open(console, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err)
    text, reason, toggled, deadline = "", "", False, time.monotonic() + timeout
    timed_out, killed = False, False
    try:
        client = GdbClient(gdb, alive=lambda: proc.poll() is None)
        client.command("?")  # started with -S: stopped before the first instruction
        client.set_breakpoint(tr.WINDOW_BEGIN)
        client.send("c")
        while True:
            if time.monotonic() > deadline:
                if timed_out:
                    break
                timed_out = True
                reason = f"the workload did not finish within {timeout:.0f} s"
                if not _ask_for_output(proc):
                    break
                deadline = time.monotonic() + DUMP_GRACE
            if not toggled and _is_stop(client.reply(0.05)):
                _log_again_from(client, mon, tr.WINDOW_BEGIN)  # the window begins
                toggled = True
            text = _read(console)
            if proc.poll() is not None:
                break
            if DONE in text or (timed_out and RUNNING_REPORTED.search(text)):
                deadline = min(deadline, time.monotonic() + (1 if timed_out else 10))
            if toggled:
                time.sleep(0.05)
        client.close()
    except (GdbError, OSError) as e:
        if proc.poll() is None:
            reason = f"driving QEMU failed: {e}"
    finally:
        if proc.poll() is None:
            proc.kill()
            killed = True
        proc.wait()
        try:
            proc.stdin.close()
        except OSError:
            pass
    text = _read(console)
    if os.path.exists(console):
        os.unlink(console)
    t = _log_addresses(log, tr.window_addresses)
    report = workload_report(text)
    if not reason:
        if not killed and proc.returncode != 0:
            reason = f"QEMU exited with code {proc.returncode}" + (
                "" if toggled else " before the guest reached the application window"
            )
        elif not toggled:
            reason = "the guest never reached the application window (init failed?)"
        elif report.problem:
            reason = report.problem
        elif report.running:
            reason = "the guest stopped before the workload finished"
        elif not t.window_found:
            reason = "the window markers were not found in the trace"
    if reason:
        reason = with_qemu_stderr(reason, _read(stderr))
    os.unlink(stderr)
    modules = [{"name": n, "address": a} for n, a in loaded_modules(text)]
    window = {"workload_status": report.status, "modules": modules}
    return {
        "ok": not reason,
        "reason": reason,
        "trace": t,
        "console": text,
        "window": window,
        "report": report,
    }


def _ask_for_output(proc: subprocess.Popen) -> bool:
    """Ask the guest for its workload's output so far (see domain.guest.protocol)."""
    if proc.poll() is not None or proc.stdin is None:
        return False
    try:
        proc.stdin.write(DUMP_REQUEST_LINE)
        proc.stdin.flush()
        return True
    except OSError:
        return False


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
    problem = cmdline_problem(args.cmdline, "")
    if problem:
        print(f"kernel_rules: tracing refused: {problem}", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    spec = BootSpec(
        args.qemu,
        args.kernel,
        args.initrd,
        args.cmdline,
        Machine(args.machine, args.cpus, args.memory, tuple(args.device)),
        "tcg",
    )
    run = (trace_boot if args.mode == "boot" else trace_app)(spec, args.out, args.timeout)
    t: tr.Trace = run["trace"]
    with open(os.path.join(args.out, "addresses.txt"), "w") as f:
        f.writelines(f"{a:x} {','.join(sorted(t.phases_of(a)))}\n" for a in sorted(t.kernel))
    with open(os.path.join(args.out, "console.log"), "w") as f:
        f.write(run["console"])
    report: Optional[WorkloadReport] = run.get("report")
    if report is not None and not report.problem:
        with open(os.path.join(args.out, "workload.log"), "wb") as f:
            f.write(report.output)
    with open(os.path.join(args.out, "trace.json"), "w") as f:
        json.dump(
            {
                "mode": args.mode,
                "addresses": len(t.kernel),
                "phase_addresses": {p: len(a) for p, a in t.phases.items()},
                "pre_kernel_instructions": t.pre_kernel_instructions,
                "window": run["window"],
                "module_sections": parse_sections(run["console"]),
            },
            f,
            indent=2,
            sort_keys=True,
        )
    if not run["ok"]:
        details = (
            failure_details(run["console"], report)
            if report is not None
            else "console tail:\n" + console_tail(run["console"])
        )
        print(f"kernel_rules: tracing failed: {run['reason']}\n{details}", file=sys.stderr)
        return 1
    print(f"kernel_rules: traced {len(t.kernel)} kernel addresses", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
