"""End to end, for real: tailored kernels are composed from real traces, built by Kbuild, and
their apps' workloads run on them under QEMU; bad composition inputs fail with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_rules.domain.kconfig.fragments import parse_config
from kernel_rules.domain.build.kbuild_deps import changed_symbols
from kernel_rules.domain.compose.tailor import holds

KERNELS = ("ipc-unminimised", "httpd", "sqlite", "proc-reader", "all")
DIST = Path("dist/examples.tailored")


TOGETHER = ("httpd", "sqlite", "proc-reader", "all")  # two configurations in one `pants package`


@pytest.fixture(scope="module")
def tailored(ws):
    """Package and test the examples in two runs: the one-app kernels without ipc together with
    `all` (the httpd kernel's inputs plus three apps: a second configuration of the same
    baseline, built in the same run), then `ipc-unminimised`."""
    first = ws.pants("package", "test", *(f"examples/tailored:{k}" for k in TOGETHER), timeout=3000)
    assert first.returncode == 0, first.output[-8000:]
    second = ws.pants("package", "test", "examples/tailored:ipc-unminimised", timeout=3000)
    assert second.returncode == 0, second.output[-8000:]
    return ws.root / DIST, first.output + second.output


def _report(dist: Path, name: str) -> dict:
    return json.loads((dist / name / "report.json").read_text())


def test_every_example_kernel_passes_its_apps(tailored):
    dist, output = tailored
    for name in KERNELS:
        report = _report(dist, name)
        assert report["all_apps_passed"], (name, report["app_results"])
        assert len(report["app_results"]) == (4 if name == "all" else 1)
        assert f"examples/tailored:{name}" in output
    assert "examples/tailored:all succeeded" in output


def test_tailored_kernels_are_smaller_than_the_trace_kernel(tailored):
    dist, _ = tailored
    for name in KERNELS:
        r = _report(dist, name)
        assert r["options"]["tailored"]["enabled"] < r["options"]["trace_kernel"]["enabled"], name
        assert r["sizes"]["tailored"]["bzImage"] < r["sizes"]["trace_kernel"]["bzImage"], name
    # one app needs no more than all of them
    assert (
        _report(dist, "ipc-unminimised")["options"]["tailored"]["enabled"]
        <= _report(dist, "all")["options"]["tailored"]["enabled"]
    )


def test_every_composed_requirement_holds_in_the_built_config(tailored):
    dist, _ = tailored
    for name in KERNELS:
        config = parse_config((dist / name / "config").read_text())
        doc = json.loads((dist / name / "requirements.json").read_text())
        assert doc["format"] == "kernel_rules/requirements@1"
        for symbol, by_value in doc["requirements"].items():
            for value, sources in by_value.items():
                assert holds(value, config.get(symbol, "n")), (name, symbol, value, sources)
        assert config.get("DEBUG_INFO", "n") == "n", name  # debug_info defaults to False
        assert (dist / name / "report.md").read_text().startswith("# Tailored kernel")


def test_all_kernel_requirements_name_every_app(tailored):
    dist, _ = tailored
    doc = json.loads((dist / "all" / "requirements.json").read_text())
    sources = json.dumps(doc["requirements"])
    for app in ("httpd", "ipc", "sqlite", "proc-reader"):
        assert f"app examples/tracing:{app} (" in sources, app
    assert "baseline examples/tracing:qemu-q35 (" in sources
    assert doc["requirements"]["EPOLL"]


def test_two_kernels_packaged_together_share_one_warm_tree(tailored):
    """httpd's and `all`'s configurations, built in one `pants package`: the second build takes
    the first's tree (waiting for it while it is busy: cheaper than a cold tree) and compiles
    nothing outside Kbuild's lower bound of its delta from the first's configuration."""
    dist, output = tailored
    one, other = (_report(dist, k)["build"] for k in ("httpd", "all"))
    configs = [parse_config((dist / k / "config").read_text()) for k in ("httpd", "all")]
    delta = changed_symbols(*configs)
    assert delta, "httpd and all have the same configuration: nothing to share"
    assert "Starting: Build kernel examples/tailored:all" in output  # not a cache hit
    for b in (one, other):
        print({k: v for k, v in b.items() if k != "outside_lower_bound"})
    assert one["tree"] == other["tree"], (one["options"], other["options"])
    second = one if one["distance"] == len(delta) else other
    assert second["distance"] == len(delta), (one["distance"], other["distance"], sorted(delta))
    assert second["outside_lower_bound"] == [], second["outside_lower_bound"]
    assert 0 < second["compiled"] <= second["lower_bound"] < second["objects"], second
    assert second["estimate"] is not None, second  # the tree chooser costed it


@pytest.fixture
def bad_target(ws):
    path = ws.root / "examples/tailored-bad"
    path.mkdir(exist_ok=True)

    def write(**fields: str) -> str:
        args = ", ".join(f"{k}={v}" for k, v in fields.items())
        (path / "BUILD").write_text(
            f'tailored_kernel(name="bad", baseline="//examples/tracing:qemu-q35", {args})\n'
        )
        return "examples/tailored-bad:bad"

    yield write
    (path / "BUILD").unlink()
    path.rmdir()


def test_forbidding_what_an_app_needs_explains_the_conflict(ws, tailored, bad_target):
    """EVENTFD: only the ipc app needs it (the baseline's boot does not use it)."""
    target = bad_target(apps='["//examples/tracing:ipc"]', forbid='["EVENTFD"]')
    result = ws.pants("package", target)
    assert result.returncode != 0
    out = result.output
    assert "minimal conflict" in out and "CONFIG_EVENTFD=n" in out, out[-3000:]
    assert "field `forbid`[0]" in out
    assert "app examples/tracing:ipc (" in out  # the app, with file:line evidence
    assert "Traceback" not in out
    assert "Starting: Build kernel" not in out


def test_unknown_force_symbol_names_the_field(ws, tailored, bad_target):
    target = bad_target(force='["CONFIG_NO_SUCH_THING=y"]')
    result = ws.pants("package", target)
    assert result.returncode != 0
    assert "field `force`[0]: CONFIG_NO_SUCH_THING is not a Kconfig symbol" in result.output


def test_app_of_another_baseline_is_refused(ws, tailored, bad_target):
    target = bad_target(apps='["//examples/tracing:qemu-q35-lo"]')
    result = ws.pants("package", target)
    assert result.returncode != 0
    assert "is a `kernel_baseline`, not an `app_profile`" in result.output


def test_a_failing_workload_names_the_app_and_shows_the_console_tail(tailored, tmp_path):
    """The app check itself (the process behind `pants test`), on a real tailored kernel with a
    real app image whose workload fails."""
    import subprocess
    import sys

    from kernel_rules.domain.guest.init import render_app_init
    from tests.conftest import REPO

    dist, _ = tailored
    (tmp_path / "init").write_text(render_app_init("//demo:broken", "fail.sh"))
    (tmp_path / "fail.sh").write_text("echo 'about to fail'\nexit 3\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_rules.domain.guest.initramfs",
            "--busybox",
            "/bin/busybox",
            "--init",
            str(tmp_path / "init"),
            "--out",
            str(tmp_path / "app.cpio.gz"),
            "--marker-source",
            str(REPO / "kernel_rules/domain/guest/window_marker.c"),
            "--file",
            str(tmp_path / "fail.sh"),
            "app/fail.sh",
        ],
        cwd=tmp_path,
        env=env,
        check=True,
    )  # the marker programs are built in cwd
    (tmp_path / "apps.json").write_text(
        json.dumps(
            [
                {
                    "name": "//demo:broken",
                    "initrd": str(tmp_path / "app.cpio.gz"),
                    "success": None,
                    "timeout": 120,
                }
            ]
        )
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_rules.domain.guest.app_check",
            "--qemu",
            "/usr/bin/qemu-system-x86_64",
            "--kernel",
            str(dist / "ipc-unminimised/bzImage"),
            "--apps",
            str(tmp_path / "apps.json"),
            "--cmdline",
            "console=ttyS0 nokaslr",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL //demo:broken: the workload exited with status 3; console tail:" in done.stdout
    assert "about to fail" in done.stdout
    assert "0 of 1 apps passed" in done.stdout
