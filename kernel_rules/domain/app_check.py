"""Boot a kernel with each application's image and run its workload, untraced.

`python3 -m kernel_rules.domain.app_check --apps apps.json --kernel bzImage --qemu ... --out out`

`apps.json` is a list of {"name", "initrd", "success" (a regex or null), "timeout"}. Each image is
an app_profile's traced-guest image (see domain.guest_init): its init prints the init marker with
the guest's uptime, marks the application window, runs the workload and prints
`KR_WORKLOAD_STATUS <n>`. Here nothing stops the guest and nothing is logged: this is the plain
run of the same guest that the trace observed.

An app passes when its workload exits 0 within its timeout and, if `success` is set, the console
matches it (multi-line mode). Per app, `out/<n>.console.log` keeps the whole console; on stdout a
line per app; `out/results.json` lists {name, passed, reason, workload_status, boot_seconds (guest
uptime when init started), seconds (wall time of the whole run)}. Exit 0 when every app passed,
1 otherwise (each failure's console tail on stdout, under the app's name).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from typing import List, Optional, Sequence

from kernel_rules.domain.qemu import INIT_MARKER, BootSpec, Machine, command_line, console_tail, watch_console

WORKLOAD_STATUS = re.compile(r"KR_WORKLOAD_STATUS (\d+)")
UPTIME = re.compile(re.escape(INIT_MARKER) + r" kernel \S+ uptime ([0-9.]+)")
DONE = "KR_DONE"


def verdict(console: str, status: Optional[int], success: Optional[str]) -> str:
    """Empty when the workload passed, else why not."""
    if status is None:
        return "the guest stopped before the workload finished"
    if status != 0:
        return f"the workload exited with status {status}"
    if success and not re.search(success, console.replace("\r", ""), re.M):
        return f"its output does not match `success` {success!r}"
    return ""


def run_app(spec: BootSpec, timeout: float, success: Optional[str]) -> dict:
    """One untraced run of an app image; see the module docstring for the result's keys."""
    def on_output(buf: bytes, proc: subprocess.Popen) -> Optional[float]:
        return 10.0 if DONE.encode() in buf else None

    start = time.monotonic()
    buf, timed_out, _ = watch_console(command_line(spec), timeout, on_output)
    seconds = time.monotonic() - start
    console = buf.decode(errors="replace")
    m = WORKLOAD_STATUS.search(console)
    status = int(m.group(1)) if m else None
    up = UPTIME.search(console)
    reason = (f"the workload did not finish within {timeout:.0f} s" if timed_out and status is None
              else verdict(console, status, success))
    if not up and not reason:
        reason = "the guest never reached its init"
    return {"passed": not reason, "reason": reason, "workload_status": status,
            "boot_seconds": float(up.group(1)) if up else None, "seconds": round(seconds, 2),
            "console": console}


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="app_check", description=__doc__.splitlines()[0])
    p.add_argument("--qemu", required=True)
    p.add_argument("--kernel", required=True)
    p.add_argument("--apps", required=True, help="JSON list of {name, initrd, success, timeout}")
    p.add_argument("--cmdline", default="console=ttyS0")
    p.add_argument("--machine", default="q35")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--memory", default="256M")
    p.add_argument("--device", action="append", default=[])
    p.add_argument("--accel", choices=("tcg", "kvm"), default="tcg")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    with open(args.apps) as f:
        apps = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    machine = Machine(args.machine, args.cpus, args.memory, tuple(args.device))
    results, failed = [], 0
    for i, app in enumerate(apps):
        spec = BootSpec(args.qemu, args.kernel, app["initrd"], args.cmdline, machine, args.accel)
        r = run_app(spec, float(app["timeout"]), app.get("success"))
        with open(os.path.join(args.out, f"{i}.console.log"), "w") as f:
            f.write(r.pop("console") if r["passed"] else r["console"])
        if r["passed"]:
            print(f"PASS {app['name']}: workload passed; init after {r['boot_seconds']} s "
                  f"(guest uptime), whole run {r['seconds']} s ({args.accel})")
        else:
            failed += 1
            print(f"FAIL {app['name']}: {r['reason']}; console tail:\n"
                  + "\n".join("  | " + line for line in console_tail(r.pop("console")).splitlines()))
        results.append({"name": app["name"], **r})
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    print(f"{len(apps) - failed} of {len(apps)} apps passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
