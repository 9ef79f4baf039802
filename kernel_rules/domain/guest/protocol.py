"""The console protocol between kernel_rules guests and the host: every marker, what writes it
on the guest side, what parses it on the host side, and the verdicts. Each marker string is
defined here once; the guests' `/init` programs (`guest.init`) are assembled from the writers
below, and the host sides (`guest.qemu` for boot checks, `guest.app_check` for app runs,
`trace.tracer` for traces, `map.modules` and benchmarks) read the console with the parsers below.

A guest has no network and no host filesystem: its serial console is its only channel, and the
same console carries the kernel's messages. Lines, in the order BOOT_INIT and then the app
/init print them:

| line | writer (guest) | when | parser (host) |
|---|---|---|---|
| `KR_MODSECT <module> <section> <address>` (`MODULE_SECTION`) | both /inits, `LIST_MODULE_SECTIONS` | BOOT_INIT: after the boot step, before the init marker; app /init: after `KR_MODULE`, before `KR_DONE` | `parse_sections` (`SECTION_LINE`); used by `map.modules` and the tracer |
| `KERNEL_RULES_INIT_OK kernel <release> uptime <s>` (`INIT_MARKER`) | both /inits, `print_init_marker` | user space is up (after loading modules and, in BOOT_INIT, the boot step) | every host side; `init_uptime` (`UPTIME`) |
| `KR_MODE check boot_script=<none\\|status>` (`MODE_LINE`) | BOOT_INIT, `PRINT_MODE_CHECK` | after the init marker, when `CHECK_PARAM` is on the kernel command line; then it powers off | `check_problem` (`MODE`) |
| `KR_MODE interactive boot_script=<none\\|status> cmdline_bytes=<n>` | BOOT_INIT, `PRINT_MODE_INTERACTIVE` | instead, without `CHECK_PARAM`; then a shell | `interactive`, `check_problem` |
| `KR_MEMINFO <MemTotal kB> <MemAvailable kB>` (`MEMINFO`) | app /init, `PRINT_MEMINFO` | after the init marker | `meminfo` (benchmarks) |
| `KR_WINDOW_REQUEST` (`WINDOW_REQUEST`) | app /init, `PRINT_WINDOW_REQUEST` | just before the window | none (a landmark in console logs) |
| `KR_OUTPUT_BEGIN` (`OUTPUT_BEGIN`), `KR_OUTPUT <base64, 76 characters a line>`... (`OUTPUT_LINE`), `KR_WORKLOAD_STATUS <status> <bytes> <sha256>` (`WORKLOAD_STATUS_LINE`) | app /init, `FRAME_FUNCTION` called by `REPORT_STATUS` | after the workload and the window | `workload_report`, then `verdict` |
| the same frame ending `KR_WORKLOAD_RUNNING <bytes> <sha256>` (`WORKLOAD_RUNNING`) | app /init, `DUMP_LISTENER` | on the host's `KR_DUMP`, while the workload runs | `workload_report` (`running`); `RUNNING_REPORTED` says it arrived |
| `KR_MODULE <line of /proc/modules>` (`MODULE_PREFIX`) | app /init, `PRINT_MODULES` | after the report | `loaded_modules` (`MODULE_LINE`), the tracer and benchmarks |
| `KR_DONE` (`DONE`) | app /init, `PRINT_DONE` | last, then it powers off | app checks and traces stop waiting (10 s grace) |
| `KR_APP_READY` (`APP_READY`) | the example workloads of examples/debian-cloud | once their server answers | benchmarks/distro.py only (boot time) |

The syscall probe (`guest/syscall_probe.c`, the workload of the probe image that
`guest.probe` boots) writes its own lines into the workload's output, so they reach the host
only inside the framed report: `KR_PROBE_SYSCALL <nr> ret <value>|signal <sig>|exit
<status>|timeout` (`PROBE_SYSCALL`) for each syscall number, `KR_PROBE_BENCH <name> <round>
<count> <nanoseconds>` (`PROBE_BENCH`) for each benchmark round and `KR_PROBE_DONE`
(`PROBE_DONE`) last; `parse_probe` reads them.

The host writes to a guest twice: `CHECK_PARAM` (`kernel_rules.mode=check`) on the kernel command
line asks BOOT_INIT for a check boot (it lowers the console loglevel, prints `KR_MODE check ...`
and powers off); and the line `KR_DUMP` (`DUMP_REQUEST_LINE`) on the console's input when a
workload ran out of time, which the app /init's listener, blocked reading the console since
before the window, answers with the output so far. The console's input is silent otherwise, so
the guest never waits for the host and traces stay deterministic. The kernel keeps at most
`COMMAND_LINE_SIZE` bytes of its command line and silently drops the rest, `CHECK_PARAM`
included: `KR_MODE interactive` reports how many bytes the guest saw.

The framed report (`FRAME_FUNCTION`) is printed with the console loglevel lowered first
(`dmesg -n 1`), so kernel messages cannot interleave with it; the workload's output (stdout and
stderr, in `WORKLOAD_LOG`) reaches the console only base64-encoded inside it, so nothing the
workload prints can pass for a marker. The host takes the last complete frame; lines without the
`KR_OUTPUT ` prefix between its markers are not part of it, and a frame whose decoded size or
sha256 does not match is a `problem`, never a verdict.

Markers in the instruction trace: the marker programs (`MARKER_PROGRAMS`, built by
guest.initramfs from `guest/window_marker.c` with `-D` `marker_define(address)`) map a page at a
fixed user address and call a `ret` there, so QEMU's log shows a block at exactly that address.
BOOT_INIT runs `USERSPACE_BEGIN_PROGRAM` first: a boot trace's kernel initialisation phase ends at
`USERSPACE_BEGIN`. The app /init runs the workload between `WINDOW_BEGIN_PROGRAM` and
`WINDOW_END_PROGRAM`: the app's window is between `WINDOW_BEGIN` and `WINDOW_END`. The tracer stops
the guest at the begin address (its gdbstub) and domain.trace.log splits the log there.

Verdicts. A check boot passes when `check_problem(console)` is empty: the init marker, then
after it `KR_MODE check` with `boot_script=none` or `boot_script=0` (a `KR_MODE` line before the
marker does not count; `KR_MODE interactive` fails at once). An app passes when
`verdict(workload_report(console), success)` is empty: an intact frame, a finished workload with
exit status 0, and, when `success` is set, its decoded output matching that regex (multi-line
mode). Nothing else on the console counts.

Standard library only, and no other kernel_rules module: every step ships it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

# ---- the markers (each string defined once, here)

MODULE_SECTION = "KR_MODSECT"
INIT_MARKER = "KERNEL_RULES_INIT_OK"
CHECK_PARAM = "kernel_rules.mode=check"  # on the kernel command line, from the host
MODE_LINE = "KR_MODE"
MEMINFO = "KR_MEMINFO"
WINDOW_REQUEST = "KR_WINDOW_REQUEST"
OUTPUT_BEGIN = "KR_OUTPUT_BEGIN"
OUTPUT_LINE = "KR_OUTPUT"
WORKLOAD_STATUS_LINE = "KR_WORKLOAD_STATUS"
WORKLOAD_RUNNING = "KR_WORKLOAD_RUNNING"
DUMP_REQUEST = "KR_DUMP"  # on the console's input, from the host
MODULE_PREFIX = "KR_MODULE"
DONE = "KR_DONE"
APP_READY = "KR_APP_READY"  # printed by example workloads themselves; read by benchmarks only
PROBE_SYSCALL = "KR_PROBE_SYSCALL"  # in the syscall probe's framed output (guest/syscall_probe.c)
PROBE_BENCH = "KR_PROBE_BENCH"
PROBE_DONE = "KR_PROBE_DONE"

# x86's COMMAND_LINE_SIZE: the kernel keeps at most this many bytes of its command line, the
# terminating NUL included, and silently drops the rest.
COMMAND_LINE_SIZE = 2048

# The user-space addresses the marker programs jump to, and the programs (paths in the guest).
WINDOW_BEGIN = 0x333333333000
WINDOW_END = 0x222222222000
USERSPACE_BEGIN = 0x444444444000
USERSPACE_BEGIN_PROGRAM = "/bin/kr-userspace-begin"
WINDOW_BEGIN_PROGRAM = "/bin/kr-window-begin"
WINDOW_END_PROGRAM = "/bin/kr-window-end"
MARKER_PROGRAMS = (
    (USERSPACE_BEGIN_PROGRAM, USERSPACE_BEGIN),
    (WINDOW_BEGIN_PROGRAM, WINDOW_BEGIN),
    (WINDOW_END_PROGRAM, WINDOW_END),
)


def marker_define(address: int) -> str:
    """The `-D` definition window_marker.c is compiled with for the marker at `address`."""
    return f"MARKER_ADDRESS={address:#x}L"


# ---- the guest side: what the /init programs run to print the lines (busybox sh)

# Where each loaded module's code sections are, for mapping traced module addresses.
LIST_MODULE_SECTIONS = f"""
for kr_d in /sys/module/*/sections; do
  [ -d "$kr_d" ] || continue
  kr_m=${{kr_d%/sections}}; kr_m=${{kr_m##*/}}
  for kr_f in "$kr_d"/.*text*; do
    [ -f "$kr_f" ] && echo "{MODULE_SECTION} $kr_m ${{kr_f##*/}} $(cat "$kr_f")"
  done
done
"""


def print_init_marker(proc_may_be_missing: bool) -> str:
    """The init marker line's `echo`; BOOT_INIT's tolerates a kernel without /proc."""
    quiet = " 2>/dev/null" if proc_may_be_missing else ""
    return (
        f"""echo "{INIT_MARKER} kernel $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime{quiet})\""""
    )


# BOOT_INIT's mode confirmations; `$kr_boot` is the boot step's exit status, or `none`.
PRINT_MODE_CHECK = f'echo "{MODE_LINE} check boot_script=$kr_boot"'
PRINT_MODE_INTERACTIVE = (
    f'echo "{MODE_LINE} interactive boot_script=$kr_boot '
    'cmdline_bytes=$(tr -d "\\n" < /proc/cmdline | wc -c)"'
)
PRINT_MEMINFO = (
    f'echo "{MEMINFO} $(sed -n "s/^MemTotal: *\\([0-9]*\\).*/\\1/p" /proc/meminfo)'
    ' $(sed -n "s/^MemAvailable: *\\([0-9]*\\).*/\\1/p" /proc/meminfo)"'
)
PRINT_WINDOW_REQUEST = f"echo {WINDOW_REQUEST}"
WORKLOAD_LOG = "/tmp/kr-workload.log"  # the workload's stdout and stderr, in the guest
# `kr_frame END`: the workload's output (a snapshot) framed, ending with "END <bytes> <sha256>".
FRAME_FUNCTION = f"""kr_frame() {{
  dmesg -n 1 2>/dev/null
  cat {WORKLOAD_LOG} > /tmp/kr-frame 2>/dev/null
  echo {OUTPUT_BEGIN}
  base64 /tmp/kr-frame | sed 's/^/{OUTPUT_LINE} /'
  echo "$1 $(wc -c < /tmp/kr-frame) $(sha256sum /tmp/kr-frame | cut -d' ' -f1)"
}}"""
# The output so far, framed, when the host sends `KR_DUMP` (run in the background).
DUMP_LISTENER = (
    f'( read -r kr_request && [ "$kr_request" = {DUMP_REQUEST} ] '
    f"&& kr_frame {WORKLOAD_RUNNING} ) < /dev/console &"
)
REPORT_STATUS = f'kr_frame "{WORKLOAD_STATUS_LINE} $status"'  # `$status`: the workload's
PRINT_MODULES = f"sed 's/^/{MODULE_PREFIX} /' /proc/modules 2>/dev/null"
PRINT_DONE = f"echo {DONE}"

# ---- the host side: what the host writes, and the parsers

DUMP_REQUEST_LINE = f"{DUMP_REQUEST}\n".encode()

SECTION_LINE = re.compile(rf"^{re.escape(MODULE_SECTION)} (\S+) (\S+) (0x[0-9a-f]+)\s*$", re.M)
UPTIME = re.compile(re.escape(INIT_MARKER) + r" kernel \S+ uptime ([0-9.]+)")
MODE = re.compile(rf"^{re.escape(MODE_LINE)} (check|interactive) boot_script=(none|\d+)", re.M)
MEMINFO_LINE = re.compile(rf"{re.escape(MEMINFO)} (\d+) (\d+)")
_END = re.compile(
    rf"(?:{re.escape(WORKLOAD_STATUS_LINE)} (\d+)|{re.escape(WORKLOAD_RUNNING)})"
    r" (\d+) ([0-9a-f]{64})"
)
RUNNING_REPORTED = re.compile(rf"\n{re.escape(WORKLOAD_RUNNING)} \d+ [0-9a-f]{{64}}")
RUNNING_REPORTED_BYTES = re.compile(RUNNING_REPORTED.pattern.encode())
PROBE_SYSCALL_LINE = re.compile(
    rf"^{re.escape(PROBE_SYSCALL)} (\d+) (?:(ret|signal|exit) (-?\d+)|(timeout))$", re.M
)
PROBE_BENCH_LINE = re.compile(rf"^{re.escape(PROBE_BENCH)} (\w+) (\d+) (\d+) (\d+)$", re.M)
MODULE_LINE = re.compile(rf"^{re.escape(MODULE_PREFIX)} (\S+) \d+ \d+ \S+ \S+ (0x[0-9a-f]+)", re.M)


def parse_sections(console: str) -> Dict[str, Dict[str, int]]:
    """{module: {section: start address}} of the `KR_MODSECT` lines of a console log (sections
    at address 0, not loaded, left out)."""
    out: Dict[str, Dict[str, int]] = defaultdict(dict)
    for module, section, address in SECTION_LINE.findall(console.replace("\r", "")):
        if int(address, 16):
            out[module][section] = int(address, 16)
    return {m: dict(s) for m, s in sorted(out.items())}


def init_uptime(console: str) -> Optional[float]:
    """The guest's uptime in seconds when its init marker was printed; None without one."""
    m = UPTIME.search(console)
    return float(m.group(1)) if m else None


def meminfo(console: str) -> Optional[Tuple[int, int]]:
    """(MemTotal, MemAvailable) in kB from the first `KR_MEMINFO` line; None without one."""
    m = MEMINFO_LINE.search(console)
    return (int(m.group(1)), int(m.group(2))) if m else None


def loaded_modules(console: str) -> List[Tuple[str, str]]:
    """[(module name, its address as printed)] of the `KR_MODULE` lines, in console order."""
    return MODULE_LINE.findall(console)


@dataclass(frozen=True)
class ProbeOutput:
    """What the syscall probe printed: per syscall number its outcome (`ret`, `signal`, `exit`
    or `timeout`) and value (None for a timeout); per benchmark its rounds as (count,
    nanoseconds); `done` when the probe printed its last line."""

    syscalls: Dict[int, Tuple[str, Optional[int]]]
    bench: Dict[str, List[Tuple[int, int]]]
    done: bool


def parse_probe(text: str) -> ProbeOutput:
    """The probe's lines in `text` (the workload's decoded output); other lines are ignored."""
    text = text.replace("\r", "")
    syscalls: Dict[int, Tuple[str, Optional[int]]] = {}
    for nr, kind, value, timeout in PROBE_SYSCALL_LINE.findall(text):
        syscalls[int(nr)] = ("timeout", None) if timeout else (kind, int(value))
    bench: Dict[str, List[Tuple[int, int]]] = defaultdict(list)
    for name, _round, count, ns in PROBE_BENCH_LINE.findall(text):
        bench[name].append((int(count), int(ns)))
    done = re.search(rf"^{re.escape(PROBE_DONE)}$", text, re.M) is not None
    return ProbeOutput(dict(sorted(syscalls.items())), dict(sorted(bench.items())), done)


def check_problem(console: str, marker: str = INIT_MARKER) -> str:
    """Why the console of a check boot does not show a confirmed, passing check; empty when the
    guest printed `marker` and then `KR_MODE check` with a boot step that passed."""
    text = console.replace("\r", "")
    if marker not in text:
        return "the guest never printed its init marker"
    m = MODE.search(text, text.index(marker))
    if m is None:
        return (
            f"the guest printed its init marker but never confirmed the check mode "
            f"(no `{MODE_LINE}` line)"
        )
    if m.group(1) != "check":
        size = re.search(r"cmdline_bytes=(\d+)", text[m.start() :].split("\n", 1)[0])
        got = f" ({size.group(1)} bytes as the guest saw it)" if size else ""
        return (
            f"the guest did not run in check mode: its kernel command line{got} lacks "
            f"`{CHECK_PARAM}` (the kernel drops what goes beyond its COMMAND_LINE_SIZE, "
            f"{COMMAND_LINE_SIZE} bytes)"
        )
    if m.group(2) not in ("none", "0"):
        return f"the boot step (`boot_script`) exited with status {m.group(2)}"
    return ""


def interactive(console: str) -> bool:
    """True once the guest said it is giving its console a shell (not a check boot)."""
    return f"{MODE_LINE} interactive" in console


@dataclass(frozen=True)
class WorkloadReport:
    """What an app guest reported about its workload, from its framed report only.

    `status` is the exit status (None: the report is of a workload still running, or there is
    none); `output` its stdout and stderr (so far, for a running one); `problem` says why there is
    no usable report ("" when there is one)."""

    status: Optional[int]
    output: bytes
    running: bool = False
    problem: str = ""

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")


def workload_report(console: str) -> WorkloadReport:
    """The last complete report framed on `console` (see the module docstring); a frame whose
    lines were damaged (its size or sha256 do not match) is a `problem`, never a verdict."""
    found: Optional[WorkloadReport] = None
    chunks: Optional[List[str]] = None
    for raw in console.split("\n"):
        line = raw.rstrip("\r")
        if line == OUTPUT_BEGIN:
            chunks = []
        elif chunks is not None and line.startswith(OUTPUT_LINE + " "):
            chunks.append(line[len(OUTPUT_LINE) + 1 :].strip())
        elif chunks is not None and _END.fullmatch(line):
            m = _END.fullmatch(line)
            found = _decoded(chunks, m)
            chunks = None
    if found is None:
        return WorkloadReport(
            None,
            b"",
            problem="the guest never reported the workload's output "
            "and exit status (the run ended before the workload finished?)",
        )
    return found


def _decoded(chunks: List[str], end: "re.Match") -> WorkloadReport:
    status = int(end.group(1)) if end.group(1) is not None else None
    size, digest = int(end.group(2)), end.group(3)
    try:
        data = base64.b64decode("".join(chunks), validate=True)
    except (binascii.Error, ValueError):
        data = None
    if data is None or len(data) != size or hashlib.sha256(data).hexdigest() != digest:
        got = "undecodable" if data is None else f"{len(data)} bytes"
        return WorkloadReport(
            None,
            b"",
            problem=(
                f"the guest's report of the workload's output was damaged on the console ({size} "
                f"bytes sent, {got} received): something else wrote into it"
            ),
        )
    return WorkloadReport(status, data, running=status is None)


def verdict(report: WorkloadReport, success: Optional[str]) -> str:
    """Empty when the workload passed, else why not (from its report alone)."""
    if report.problem:
        return report.problem
    if report.running:
        return "the workload had not finished when the run ended"
    if report.status != 0:
        return f"the workload exited with status {report.status}"
    if success and not re.search(success, report.text, re.M):
        printed = (
            "it printed nothing" if not report.output else f"it printed {len(report.output)} bytes"
        )
        return f"its output does not match `success` {success!r} ({printed})"
    return ""


def without_frames(console: str) -> str:
    """`console` without the framed report's base64 lines (for showing a console tail)."""
    return "\n".join(
        line
        for line in console.replace("\r", "").split("\n")
        if not line.startswith(OUTPUT_LINE + " ")
    )


def console_tail(console: str, lines: int = 40) -> str:
    return "\n".join(console.splitlines()[-lines:])
