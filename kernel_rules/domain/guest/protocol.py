"""The console protocol between kernel_rules guests and the host: every marker, who writes it,
who reads it, and the verdicts.

A guest has no network and no host filesystem; its serial console is its only channel. The
guest side is the `/init` programs of `guest.init` (shell, rendered from the constants here) and
the marker programs of `guest/window_marker.c`; the host side is `guest.qemu` (boot checks),
`guest.app_check` (app runs) and `trace.tracer` (traces), which read the console with the parsers
here. Lines, in the order a guest prints them:

| line | written by | when | read by |
|---|---|---|---|
| `KR_MODSECT <module> <section> <address>` (`MODULE_SECTION`) | both /inits | after loading modules | `map.modules.parse_sections` (`SECTION_LINE`) |
| `KERNEL_RULES_INIT_OK kernel <release> uptime <s>` (`INIT_MARKER`) | both /inits | user space is up (after the boot step) | every host side; `UPTIME` |
| `KR_MODE check boot_script=<none or status>` or `KR_MODE interactive ...` (`MODE_LINE`) | BOOT_INIT | after the init marker | `check_problem`, `interactive` |
| `KR_MEMINFO <MemTotal kB> <MemAvailable kB>` (`MEMINFO`) | app /init | after the init marker | reports |
| `KR_WINDOW_REQUEST` (`WINDOW_REQUEST`) | app /init | just before the window | `trace.tracer` (arms the window) |
| `KR_OUTPUT_BEGIN`, `KR_OUTPUT <base64>`..., `KR_WORKLOAD_STATUS <status> <bytes> <sha256>` | app /init | after the workload | `workload_report` |
| `KR_WORKLOAD_RUNNING <bytes> <sha256>` (instead of the status line) | app /init | on the host's `KR_DUMP` | `workload_report` (`RUNNING_REPORTED`) |
| `KR_MODULE <line of /proc/modules>` (`MODULE_LINE`) | app /init | after the workload | `trace.tracer` |
| `KR_DONE` (`DONE`) | app /init | last | app checks and traces stop waiting |

The host writes one line to a guest: `KR_DUMP` (`DUMP_REQUEST`), when a workload ran out of time.
`CHECK_PARAM` on the kernel command line asks BOOT_INIT for a check boot: it lowers the console
loglevel, confirms with `KR_MODE check` and powers off. Before the framed report the app /init
lowers the console loglevel too, so kernel messages cannot interleave with it.

The marker programs jump to fixed user-space addresses that a trace recognises: the kernel
initialisation phase of a boot trace ends at `USERSPACE_BEGIN`; an app's window is between
`WINDOW_BEGIN` and `WINDOW_END`.

Verdicts: a check boot passes when `check_problem` is empty (init marker, then `KR_MODE check`
with a boot step that exited 0); an app passes when `verdict(workload_report(console), success)`
is empty (an intact frame, exit status 0, the output matching `success`). Nothing else on the
console counts. Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import List, Optional

# ---- markers the guest prints, and their parsers

MODULE_SECTION = "KR_MODSECT"  # `KR_MODSECT <module> <section> <address>`: see domain.map.modules
MEMINFO = "KR_MEMINFO"  # `KR_MEMINFO <MemTotal kB> <MemAvailable kB>`
SECTION_LINE = re.compile(r"^KR_MODSECT (\S+) (\S+) (0x[0-9a-f]+)\s*$", re.M)
INIT_MARKER = "KERNEL_RULES_INIT_OK"
CHECK_PARAM = "kernel_rules.mode=check"
MODE_LINE = "KR_MODE"  # `KR_MODE check|interactive boot_script=<none|status> ...`
MODE = re.compile(r"^KR_MODE (check|interactive) boot_script=(none|\d+)", re.M)
# x86's COMMAND_LINE_SIZE: the kernel keeps at most this many bytes of its command line, the
# terminating NUL included, and silently drops the rest.
COMMAND_LINE_SIZE = 2048
OUTPUT_BEGIN = "KR_OUTPUT_BEGIN"
OUTPUT_LINE = "KR_OUTPUT"
WORKLOAD_STATUS_LINE = "KR_WORKLOAD_STATUS"
WORKLOAD_RUNNING = "KR_WORKLOAD_RUNNING"
DUMP_REQUEST = "KR_DUMP"
_END = re.compile(r"(?:KR_WORKLOAD_STATUS (\d+)|KR_WORKLOAD_RUNNING) (\d+) ([0-9a-f]{64})")
UPTIME = re.compile(re.escape(INIT_MARKER) + r" kernel \S+ uptime ([0-9.]+)")
DONE = "KR_DONE"
RUNNING_REPORTED = re.compile(r"\nKR_WORKLOAD_RUNNING \d+ [0-9a-f]{64}")
RUNNING_REPORTED_BYTES = re.compile(RUNNING_REPORTED.pattern.encode())
WINDOW_REQUEST = "KR_WINDOW_REQUEST"
MODULE_PREFIX = "KR_MODULE"  # `KR_MODULE <a line of /proc/modules>`
MODULE_LINE = re.compile(r"^KR_MODULE (\S+) \d+ \d+ \S+ \S+ (0x[0-9a-f]+)", re.M)

# The user-space addresses the marker programs jump to (see guest/window_marker.c).
WINDOW_BEGIN = 0x333333333000
WINDOW_END = 0x222222222000
USERSPACE_BEGIN = 0x444444444000


def check_problem(console: str, marker: str = INIT_MARKER) -> str:
    """Why the console of a check boot does not show a confirmed, passing check; empty when the
    guest printed `marker` and then `KR_MODE check` with a boot step that passed."""
    text = console.replace("\r", "")
    if marker not in text:
        return "the guest never printed its init marker"
    m = MODE.search(text, text.index(marker))
    if m is None:
        return (f"the guest printed its init marker but never confirmed the check mode "
                f"(no `{MODE_LINE}` line)")
    if m.group(1) != "check":
        size = re.search(r"cmdline_bytes=(\d+)", text[m.start():].split("\n", 1)[0])
        got = f" ({size.group(1)} bytes as the guest saw it)" if size else ""
        return (f"the guest did not run in check mode: its kernel command line{got} lacks "
                f"`{CHECK_PARAM}` (the kernel drops what goes beyond its COMMAND_LINE_SIZE, "
                f"{COMMAND_LINE_SIZE} bytes)")
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
            chunks.append(line[len(OUTPUT_LINE) + 1:].strip())
        elif chunks is not None and _END.fullmatch(line):
            m = _END.fullmatch(line)
            found = _decoded(chunks, m)
            chunks = None
    if found is None:
        return WorkloadReport(None, b"", problem="the guest never reported the workload's output "
                              "and exit status (the run ended before the workload finished?)")
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
        return WorkloadReport(None, b"", problem=(
            f"the guest's report of the workload's output was damaged on the console ({size} "
            f"bytes sent, {got} received): something else wrote into it"))
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
        printed = "it printed nothing" if not report.output else f"it printed {len(report.output)} bytes"
        return f"its output does not match `success` {success!r} ({printed})"
    return ""


def without_frames(console: str) -> str:
    """`console` without the framed report's base64 lines (for showing a console tail)."""
    return "\n".join(line for line in console.replace("\r", "").split("\n")
                     if not line.startswith(OUTPUT_LINE + " "))


def console_tail(console: str, lines: int = 40) -> str:
    return "\n".join(console.splitlines()[-lines:])
