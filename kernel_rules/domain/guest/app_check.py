"""Boot a kernel with each application's image and run its workload, untraced. The framed report
it reads is parsed by guest.protocol.

`python3 -m kernel_rules.domain.guest.app_check --apps apps.json --kernel bzImage --qemu ... --out out`

`apps.json` is a list of {"name", "initrd", "success" (a regex or null), "timeout"}. Each image is
an app_profile's traced-guest image (see domain.guest.init): its init prints the init marker with
the guest's uptime, marks the application window, runs the workload and reports its output and
exit status framed (`KR_OUTPUT_BEGIN`, base64 `KR_OUTPUT` lines, `KR_WORKLOAD_STATUS <status>
<bytes> <sha256>`). Here nothing stops the guest and nothing is logged: this is the plain run of
the same guest that the trace observed.

The verdict comes only from that report (`workload_report`), never from the rest of the console:
an app passes when the report is intact, its workload exited 0 within its timeout and, if
`success` is set, the workload's own output matches it (multi-line mode). When the timeout
passes, the host asks the guest for the output so far (a `KR_DUMP` line on the console) and shows
it. Per app, `out/<n>.console.log` keeps the whole console; on stdout a line per app;
`out/results.json` lists {name, passed, reason, workload_status, boot_seconds (guest uptime when
init started), seconds (wall time of the whole run)}. Exit 0 when every app passed, 1 otherwise
(each failure's reason, the workload's output and the console tail on stdout, under the app's
name).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import List, Optional, Sequence

from kernel_rules.domain.guest.protocol import (
    DONE,
    DUMP_REQUEST_LINE,
    INIT_MARKER,
    RUNNING_REPORTED_BYTES,
    WorkloadReport,
    console_tail,
    init_uptime,
    verdict,
    without_frames,
    workload_report,
)
from kernel_rules.domain.guest.qemu import (
    BootSpec,
    add_machine_arguments,
    cmdline_problem,
    command_line,
    machine_of,
    watch_console,
    with_qemu_stderr,
)

DUMP_GRACE = 20.0  # seconds the guest gets to report a timed-out workload's output


def failure_details(console: str, report: WorkloadReport, lines: int = 40) -> str:
    """The console tail (without the framed report) and the workload's own output (its last
    `lines` lines; so far, for a running one), for a failure message."""
    tail = console_tail(without_frames(console), lines)
    parts = ["console tail:\n" + "\n".join("  | " + ln for ln in tail.splitlines())]
    if not report.problem:
        what = "so far" if report.running else "(stdout and stderr)"
        out = report.text.splitlines()[-lines:]
        parts.append(
            f"workload output {what}:\n"
            + ("\n".join("  | " + ln for ln in out) if out else "  (nothing)")
        )
    return "\n".join(parts)


def run_app(
    spec: BootSpec, timeout: float, success: Optional[str], init_timeout: Optional[float] = None
) -> dict:
    """One untraced run of an app image; see the module docstring for the result's keys (plus
    `console` and `details`, the failure's console tail and workload output). With
    `init_timeout`, a guest whose init marker has not appeared after that many seconds fails at
    once (a candidate kernel that cannot boot should not cost the workload's whole timeout)."""
    asked: List[bool] = []

    def on_output(buf: bytes, proc: subprocess.Popen) -> Optional[float]:
        if DONE.encode() in buf:
            return 10.0
        if asked and RUNNING_REPORTED_BYTES.search(buf):
            return 1.0
        return None

    def on_timeout(proc: subprocess.Popen) -> Optional[float]:
        asked.append(True)
        try:
            proc.stdin.write(DUMP_REQUEST_LINE)
            proc.stdin.flush()
        except OSError:
            return None
        return DUMP_GRACE

    start = time.monotonic()
    run = watch_console(
        command_line(spec),
        timeout,
        on_output,
        stdin=subprocess.PIPE,
        on_timeout=on_timeout,
        must_see=(INIT_MARKER.encode(), init_timeout) if init_timeout else None,
    )
    seconds = time.monotonic() - start
    console = run.console.decode(errors="replace")
    report = workload_report(console)
    up = init_uptime(console)
    if run.timed_out and (report.running or report.problem):
        reason = f"the workload did not finish within {timeout:.0f} s"
        if report.problem:
            reason += " (the guest did not report its output so far)"
    elif run.stalled:
        reason = f"the guest did not reach its init within {init_timeout:.0f} s"
    elif up is None:
        reason = "the guest never reached its init"
    else:
        reason = verdict(report, success)
    if reason:
        reason = with_qemu_stderr(reason, run.stderr)
    return {
        "passed": not reason,
        "reason": reason,
        "workload_status": report.status,
        "boot_seconds": up,
        "seconds": round(seconds, 2),
        "console": console,
        "details": failure_details(console, report) if reason else "",
    }


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="app_check", description=__doc__.splitlines()[0])
    add_machine_arguments(p)
    p.add_argument("--apps", required=True, help="JSON list of {name, initrd, success, timeout}")
    p.add_argument("--accel", choices=("tcg", "kvm"), default="tcg")
    p.add_argument(
        "--init-timeout",
        type=float,
        help="fail an app whose guest has not reached its init after this many s",
    )
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failing app")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    problem = cmdline_problem(args.cmdline, "")
    if problem:
        print(f"kernel_rules: app check refused: {problem}")
        return 1
    with open(args.apps) as f:
        apps = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    machine = machine_of(args)
    results, failed = [], 0
    for i, app in enumerate(apps):
        spec = BootSpec(args.qemu, args.kernel, app["initrd"], args.cmdline, machine, args.accel)
        r = run_app(spec, float(app["timeout"]), app.get("success"), args.init_timeout)
        with open(os.path.join(args.out, f"{i}.console.log"), "w") as f:
            f.write(r.pop("console"))
        details = r.pop("details")
        if r["passed"]:
            print(
                f"PASS {app['name']}: workload passed; init after {r['boot_seconds']} s "
                f"(guest uptime), whole run {r['seconds']} s ({args.accel})"
            )
        else:
            failed += 1
            print(f"FAIL {app['name']}: {r['reason']}; {details}")
        results.append({"name": app["name"], **r})
        if failed and args.fail_fast:
            print(f"kernel_rules: --fail-fast: {len(apps) - i - 1} more app(s) not run")
            break
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    print(f"{sum(1 for r in results if r['passed'])} of {len(apps)} apps passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
