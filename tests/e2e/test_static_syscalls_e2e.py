"""End to end, for real: static syscall coverage (`tailored_kernel(static_syscalls=...)`).

`examples/static-coverage:timer` is a program whose timerfd path the traced workload never
takes. Both of its tailored kernels pass the app's own workload (`pants test`); booted with
`kr_timer_path` on the kernel command line, the workload takes that path, and only the kernel
composed with static coverage has the syscall: the other one answers ENOSYS. The kernels are
packaged in the session's workspace.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_rules.domain.kconfig.fragments import parse_config
from tests.e2e.workspace import REPO

DIST = Path("dist/examples.static-coverage")
TARGETS = ("examples/static-coverage:traced", "examples/static-coverage:static")


@pytest.fixture(scope="module")
def kernels(ws):
    done = ws.pants("package", "test", "examples/static-coverage:timer", *TARGETS, timeout=3000)
    assert done.returncode == 0, done.output[-8000:]
    return {name: ws.root / DIST / name for name in ("traced", "static")}


def run_timer_path(kernel: Path, out: Path) -> dict:
    """Boot `kernel` with the app's own image, the workload taking its timerfd path."""
    apps = out / "apps.json"
    out.mkdir(parents=True, exist_ok=True)
    apps.write_text(
        json.dumps(
            [
                {
                    "name": "timer (timerfd path)",
                    "initrd": str(kernel.parent / "timer/initramfs.cpio.gz"),
                    "success": "timerfd fired",
                    "timeout": 240,
                }
            ]
        )
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_rules.domain.guest.app_check",
            "--qemu",
            "qemu-system-x86_64",
            "--kernel",
            str(kernel / "bzImage"),
            "--apps",
            str(apps),
            "--cmdline",
            "console=ttyS0 nokaslr kr_timer_path",
            "--out",
            str(out / "out"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    [result] = json.loads((out / "out/results.json").read_text())
    result["output"] = run.stdout  # each failure's reason and the workload's own output
    return result


def test_static_coverage_keeps_the_options_of_untraced_syscalls(kernels):
    traced = parse_config((kernels["traced"] / "config").read_text())
    static = parse_config((kernels["static"] / "config").read_text())
    assert traced.get("TIMERFD", "n") == "n" and static["TIMERFD"] == "y"
    cost = json.loads((kernels["static"] / "compose.json").read_text())["static_syscalls"]
    print(json.dumps({k: v for k, v in cost.items() if k != "apps"}, indent=1))
    assert "TIMERFD" in cost["cost"]["options_kept"]
    [app] = cost["apps"]
    assert app["gated"]["timerfd_create"] == "TIMERFD"
    assert cost["cost"]["options"] == len(
        [s for s, v in static.items() if v in ("y", "m") and traced.get(s, "n") not in ("y", "m")]
    ) - len(
        [s for s, v in traced.items() if v in ("y", "m") and static.get(s, "n") not in ("y", "m")]
    )
    report = (kernels["static"] / "report.md").read_text()
    assert "Static syscall coverage" in report and "TIMERFD" in report
    assert "timerfd_create" in json.dumps(
        json.loads((kernels["static"] / "requirements.json").read_text())
    )


def test_the_untraced_path_works_only_with_static_coverage(kernels, tmp_path):
    static = run_timer_path(kernels["static"], tmp_path / "static")
    assert static["passed"], static["output"][-3000:]
    traced = run_timer_path(kernels["traced"], tmp_path / "traced")
    assert not traced["passed"]
    assert "timerfd_create: Function not implemented" in traced["output"], traced["output"][-3000:]
