"""End to end, for real: the tracing examples package from the repository through Pants; the
config sets come from real QEMU runs of the real trace kernel, checked against ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_rules.domain.map.conditions import Not, Sym
from kernel_rules.domain.map.cpp_conditions import line_conditions
from kernel_rules.domain.kconfig.fragments import parse_config

APPS = ("httpd", "ipc", "sqlite", "proc-reader")
DIST = Path("dist/examples.tracing")


@pytest.fixture(scope="module")
def traced(ws):
    result = ws.pants("package", "examples/tracing::")
    assert result.returncode == 0, result.output[-6000:]
    return ws.root / DIST


def _set(traced: Path, name: str) -> dict:
    return json.loads((traced / name / "config-set.json").read_text())


def test_every_example_packages_a_config_set(traced):
    for name in ("qemu-q35", *APPS):
        doc = _set(traced, name)
        assert doc["format"] == "kernel_rules/config-set@2"
        assert doc["stats"]["addresses"] > 1000, name
        assert (traced / name / "summary.md").read_text().startswith("# Config set")
    assert _set(traced, "qemu-q35")["kind"] == "baseline"
    assert _set(traced, "ipc")["kind"] == "app"


def test_baseline_evidence_has_its_phase(traced):
    """The boot is split where the guest's /init runs its first program: initcalls that never
    run again (IPv6, the PS/2 mouse protocols probed) are `init` only; code that ran during
    initialisation and again in the user-space boot is seen again, and has both phases."""
    doc = _set(traced, "qemu-q35")
    reqs = doc["requirements"]
    for sym, req in reqs.items():
        assert req["phases"] and set(req["phases"]) <= {"init", "boot"}, sym
        assert req["phases"] == sorted(req["phases"]), sym
    assert all(c["phases"] for c in doc["conditions"])
    init_only = {s for s, r in reqs.items() if r["phases"] == ["init"]}
    assert {"IPV6", "IPV6_SIT"} <= init_only
    assert any(s.startswith("MOUSE_PS2_") for s in init_only)
    for sym in ("PROC_FS", "DEVTMPFS", "BINFMT_ELF"):  # registered at init, used by /init
        assert reqs[sym]["phases"] == ["boot", "init"], sym
    assert any(r["phases"] == ["boot"] for r in reqs.values())
    stats = doc["stats"]
    phases = stats["phase_addresses"]
    assert min(phases["init"], phases["boot"]) > 10000
    assert phases["init"] + phases["boot"] > stats["addresses"]  # logged again after the split
    summary = (traced / "qemu-q35" / "summary.md").read_text()
    assert (
        f"init-only requirements (executed during kernel initialisation, never in the "
        f"user-space boot): {len(init_only)}" in summary
    )


def test_app_evidence_is_all_in_the_app_phase(traced):
    for name in APPS:
        doc = _set(traced, name)
        assert {tuple(r["phases"]) for r in doc["requirements"].values()} == {("app",)}, name
        assert list(doc["stats"]["phase_addresses"]) == ["app"], name


def test_ipc_program_needs_epoll_eventfd_futex_and_unix_sockets(traced):
    reqs = _set(traced, "ipc")["requirements"]
    for sym in ("EPOLL", "EVENTFD", "FUTEX", "UNIX", "NET"):
        assert sym in reqs and reqs[sym]["value"] in ("y", "ym"), sym


def test_reading_proc_in_the_window_needs_proc_fs_although_boot_used_it(traced):
    assert "PROC_FS" in _set(traced, "qemu-q35")["requirements"]
    app = _set(traced, "proc-reader")["requirements"]
    assert app["PROC_FS"]["value"] == "y"
    assert any(e.startswith("fs/proc/") for e in app["PROC_FS"]["evidence"])


def test_httpd_serves_over_loopback_so_it_needs_inet(traced):
    reqs = _set(traced, "httpd")["requirements"]
    assert reqs["INET"]["value"] in ("y", "ym") and reqs["NET"]["value"] in ("y", "ym")


def test_every_positive_requirement_is_enabled_in_the_trace_kernel(traced):
    config = parse_config((traced / "trace-kernel/config").read_text())
    for name in ("qemu-q35", *APPS):
        for sym, req in _set(traced, name)["requirements"].items():
            if req["value"] in ("y", "m", "ym"):
                assert config.get(sym, "n") in ("y", "m"), (name, sym)
                if req["value"] != "ym":
                    assert config[sym] == req["value"], (name, sym)


def test_ifndef_around_executed_code_yields_the_symbol_off(traced, kernel_srctree):
    """Some baseline requirement says X is off, and its evidence is a line whose real source
    region is `#ifndef CONFIG_X` (or its #else): checked by re-reading the source."""
    reqs = _set(traced, "qemu-q35")["requirements"]
    config = parse_config((traced / "trace-kernel/config").read_text())
    confirmed = []
    for sym, req in reqs.items():
        if req["value"] not in ("n", "not-y"):
            continue
        assert config.get(sym, "n") != "y", sym
        for where in req["evidence"]:
            path, line = where.rsplit(":", 1)
            text = (kernel_srctree / path).read_text(errors="replace")
            cond = line_conditions(text).condition(int(line))
            parts = cond.args if hasattr(cond, "args") else (cond,)
            if Not(Sym(sym, "y")) in parts or Not(Sym(sym, "ym")) in parts:
                confirmed.append(f"{sym} at {where}")
    assert confirmed, "no `#ifndef CONFIG_X` evidence found among the off requirements"


def test_baseline_trace_is_deterministic(ws, traced):
    first = (traced / "qemu-q35/config-set.json").read_bytes()
    result = ws.pants("--no-local-cache", "package", "examples/tracing:qemu-q35")
    assert result.returncode == 0, result.output[-4000:]
    assert "Starting: Trace examples/tracing:qemu-q35" in result.output
    assert (traced / "qemu-q35/config-set.json").read_bytes() == first


def test_app_traces_are_deterministic(ws, traced):
    """A breakpoint stops the guest at the window while logging is switched on, so nothing in the run
    depends on host timing: two uncached traces give byte-identical app config sets."""
    apps = ("ipc", "httpd")
    first = {a: (traced / a / "config-set.json").read_bytes() for a in apps}
    result = ws.pants("--no-local-cache", "package", *(f"examples/tracing:{a}" for a in apps))
    assert result.returncode == 0, result.output[-4000:]
    assert "Starting: Trace examples/tracing:ipc under QEMU (app)" in result.output
    for a in apps:
        assert (traced / a / "config-set.json").read_bytes() == first[a], a


def test_changing_one_workload_retraces_only_that_app(ws, traced):
    workload = ws.root / "examples/tracing/proc_workload.sh"
    workload.write_text(workload.read_text() + "cat /proc/version\n")
    result = ws.pants("package", "examples/tracing::")
    assert result.returncode == 0, result.output[-4000:]
    assert "Starting: Trace examples/tracing:proc-reader" in result.output
    for other in ("qemu-q35", "ipc", "httpd", "sqlite"):
        assert f"Starting: Trace examples/tracing:{other} " not in result.output, other
    assert "Starting: Build kernel" not in result.output


BAD = """
kernel_image(name="no-debug", source="//third_party/linux:linux-6.1", fragments=["../examples/minimal/boot.config"])
kernel_baseline(name="no-debug-baseline", kernel=":no-debug")
app_profile(name="wrong-baseline", baseline="//examples/tracing:trace-kernel", workload="ok.sh")
app_profile(name="failing", baseline="//examples/tracing:qemu-q35", workload="fail.sh")
app_profile(name="relative-binary", baseline="//examples/tracing:qemu-q35", binaries=["sqlite3"], workload="ok.sh")
"""


@pytest.fixture(scope="module")
def bad_trace(ws, traced):
    d = ws.root / "badtrace"
    d.mkdir()
    (d / "BUILD").write_text(BAD)
    (d / "ok.sh").write_text("true\n")
    (d / "fail.sh").write_text("echo about to fail; ls /no/such/file\n")
    return d


@pytest.mark.parametrize(
    "target, expected",
    [
        (
            "badtrace:no-debug-baseline",
            "field `kernel`: badtrace:no-debug must set `debug_info=True`",
        ),
        ("badtrace:wrong-baseline", "field `baseline` must name a `kernel_baseline` target"),
        ("badtrace:failing", "badtrace:failing: the workload exited with status 1"),
        (
            "badtrace:relative-binary",
            "field `binaries`: 'sqlite3' is not an absolute, normalised host path",
        ),
    ],
)
def test_bad_trace_input_gets_a_clear_error(ws, bad_trace, target, expected):
    result = ws.pants("package", target)
    assert result.returncode != 0
    assert expected in result.output, result.output[-3000:]
    assert "Traceback (most recent call last)" not in result.output


def test_failing_workload_shows_the_console_tail(ws, bad_trace):
    result = ws.pants("package", "badtrace:failing")
    assert "about to fail" in result.output and "No such file" in result.output


def test_baseline_boot_script_runs_inside_the_traced_boot(traced):
    console = (traced / "qemu-q35-lo/console.log").read_text(errors="replace")
    assert "boot step: loopback up" in console
    assert "127.0.0.1" in console
    plain = _set(traced, "qemu-q35")["stats"]["lines"]
    assert _set(traced, "qemu-q35-lo")["stats"]["lines"] > plain
