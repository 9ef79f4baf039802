"""End to end, for real: verified minimisation builds and boots candidates. The baseline is
verified once (its boot check, no app) and shared by four tailored kernels packaged together
(one has no app: it is the verified baseline as a kernel, checked with the boot check; one has
an app that needs something the baseline's boot does not, which is bisected back); each
kernel's own tries start from it; every try is recorded, the last passing one is packaged, and
a rerun (pantsd restarted) repeats no composition, build or boot.

Budgets keep the suite's time: the baseline gets 4 tries (on the example machine its first try
passes: the guest format is hard, and nothing else its boot ran only at initialisation is
needed), the smaps app 2, and the other apps are ones whose delta on the verified baseline
needs no broad rebuild (reading /proc, printing a line)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from kernel_rules.domain.kconfig.fragments import parse_config

REPO = Path(__file__).resolve().parents[2]
BASELINE_TRIES = 4
TRIES = 1
SMAPS_TRIES = 2
# Needs /proc/<pid>/smaps to exist (PROC_PAGE_MONITOR) without running its code: only a boot
# shows it is needed, so the first try on the verified baseline fails and it is bisected back.
SMAPS_WORKLOAD = 'test -e /proc/self/smaps && echo "smaps present"\n'
BUILD = f"""
kernel_baseline(
    name="q35",
    kernel="//examples/tracing:trace-kernel",
    machine="q35",
    cpus=1,
    memory="256M",
    minimise_max_tries={BASELINE_TRIES},
)

app_profile(name="hello", baseline=":q35", workload="hello_workload.sh", success="hello from Linux")

app_profile(name="proc-reader", baseline=":q35", workload="proc_workload.sh", success="MemTotal")

app_profile(name="smaps", baseline=":q35", workload="smaps_workload.sh", success="smaps present")

tailored_kernel(
    name="hello-kernel",
    baseline=":q35",
    apps=[":hello"],
    minimise="baseline",
    minimise_max_tries={TRIES},
)

tailored_kernel(
    name="proc-kernel",
    baseline=":q35",
    apps=[":proc-reader"],
    minimise="baseline",
    minimise_max_tries={TRIES},
)

tailored_kernel(
    name="smaps-kernel",
    baseline=":q35",
    apps=[":smaps"],
    minimise="baseline",
    minimise_max_tries={SMAPS_TRIES},
)

tailored_kernel(
    name="boot-kernel",
    baseline=":q35",
    minimise="baseline",
    minimise_max_tries={TRIES},
)
"""
KERNELS = (
    "minimise_e2e:hello-kernel",
    "minimise_e2e:proc-kernel",
    "minimise_e2e:smaps-kernel",
    "minimise_e2e:boot-kernel",
)
BASELINE_TRY = re.compile(r"minimise_e2e:q35 \(baseline\): minimisation try (\d+):")


@pytest.fixture(scope="module")
def minimised(ws):
    d = ws.root / "minimise_e2e"
    d.mkdir(exist_ok=True)
    shutil.copy(REPO / "examples/tracing/proc_workload.sh", d / "proc_workload.sh")
    (d / "hello_workload.sh").write_text('echo "hello from $(uname -s)"\n')
    (d / "smaps_workload.sh").write_text(SMAPS_WORKLOAD)
    (d / "BUILD").write_text(BUILD)
    first = ws.pants("package", "test", *KERNELS, timeout=3600)
    assert first.returncode == 0, first.output[-8000:]
    ws.stop_pantsd()
    rerun = ws.pants("package", "test", *KERNELS, timeout=1200)
    assert rerun.returncode == 0, rerun.output[-8000:]
    dists = {k: ws.root / "dist/minimise_e2e" / k.split(":")[1] for k in KERNELS}
    return dists, first.output, rerun.output


def test_the_baseline_is_verified_once_for_both_kernels(minimised):
    dists, first, _ = minimised
    assert first.count("minimise_e2e:q35: verifying the baseline") == 1, first[-6000:]
    done = [int(n) for n in BASELINE_TRY.findall(first)]
    assert sorted(done) == list(range(1, len(done) + 1)), "each baseline try runs once"
    records = {k: (d / "verified-baseline.json").read_text() for k, d in dists.items()}
    assert len(set(records.values())) == 1, "both kernels carry the same verified baseline"
    vb = json.loads(next(iter(records.values())))
    assert vb["format"] == "kernel_rules/minimisation@1" and vb["baseline"] == "minimise_e2e:q35"
    assert 1 <= len(vb["tries"]) <= BASELINE_TRIES == vb["max_tries"]
    assert len(vb["tries"]) == len(done)
    considered = {i for g in vb["groups"] for i in g["symbols"]}
    assert vb["tries"][0]["left_out"] == len(considered)  # all of it at once first
    for t in vb["tries"]:
        assert t["enabled"] > 0 and t["text"] > 0, t
        if not t["passed"]:
            assert t["reason"].strip(), t  # the boot check's own failure output
    passing = [t for t in vb["tries"] if t["passed"]]
    assert len(vb["removed"]) == (passing[-1]["left_out"] if passing else 0)


def test_each_kernel_starts_from_the_verified_baseline(minimised):
    dists, first, _ = minimised
    for kernel, dist in dists.items():
        vb = json.loads((dist / "verified-baseline.json").read_text())
        record = json.loads((dist / "minimise.json").read_text())
        soft = json.loads((dist / "soft.json").read_text())
        assert record["format"] == "kernel_rules/minimisation@1" and record["mode"] == "baseline"
        assert record["verified_baseline"]["removed"] == vb["removed"]
        items = {i for g in soft["groups"] for i in g["symbols"]}
        # the kernel's soft requirements are among what the baseline decided
        assert items <= set(record["verified_baseline"]["considered"])
        assert set(record["removed"]) <= items & set(vb["removed"])
        assert {k["item"] for k in record["kept"]} | set(record["removed"]) == items
        delta = items & set(vb["removed"])
        if delta:
            assert record["tries"][0]["left_out"] == len(delta)  # the whole delta, one try
            assert f"{kernel}: minimisation try 1:" in first
        else:
            assert record["tries"] == [], "nothing left to decide: no try"
        assert len(record["tries"]) <= (SMAPS_TRIES if "smaps" in kernel else TRIES)
        for k in record["kept"]:
            if k["item"] not in vb["removed"]:
                assert k["by_baseline"], k


def test_the_packaged_kernel_is_the_last_passing_try(minimised):
    dists, _, _ = minimised
    for dist in dists.values():
        record = json.loads((dist / "minimise.json").read_text())
        report = json.loads((dist / "report.json").read_text())
        config = parse_config((dist / "config").read_text())
        enabled = sum(1 for v in config.values() if v in ("y", "m"))
        passing = [t for t in record["tries"] if t["passed"]]
        assert report["all_apps_passed"]
        if passing:
            assert enabled == passing[-1]["enabled"]
            assert enabled < report["options"]["trace_kernel"]["enabled"]
        requirements = json.loads((dist / "requirements.json").read_text())
        assert len(requirements.get("left_out", [])) >= len(record["removed"])
        md = (dist / "report.md").read_text()
        assert "## Verified minimisation" in md
        assert "Started from the verified baseline `minimise_e2e:q35`" in md
        assert ("incomplete" in md) == (
            not record["complete"] or not record["verified_baseline"]["complete"]
        )


def test_a_rerun_does_no_build_and_no_boot(minimised):
    _, first, rerun = minimised
    assert re.search(r"Starting: Build kernel minimise_e2e:q35", first)
    assert not re.search(r"Starting: Build kernel", rerun), rerun[-4000:]
    assert not re.search(r"Starting: Run \d+ app workload", rerun), rerun[-4000:]
    assert not re.search(r"Starting: Compose", rerun), rerun[-4000:]


def test_a_kernel_with_no_apps_is_the_verified_baseline(minimised):
    """No apps: the candidates (and `pants test`) get the baseline's boot check, and the first
    try is the verified baseline's last passing configuration (a cached build and boot)."""
    dists, first, rerun = minimised
    dist = dists["minimise_e2e:boot-kernel"]
    vb = json.loads((dist / "verified-baseline.json").read_text())
    record = json.loads((dist / "minimise.json").read_text())
    report = json.loads((dist / "report.json").read_text())
    assert report["apps"] == []
    checked = [a["name"] for a in report["app_results"]]
    assert checked == ["minimise_e2e:q35 (boot check)"], report["app_results"]
    assert report["all_apps_passed"]
    passing = [t for t in vb["tries"] if t["passed"]]
    if passing:
        assert record["tries"][0]["passed"]
        assert record["tries"][0]["config_sha256"] == passing[-1]["config_sha256"]
    assert "minimise_e2e:boot-kernel" in rerun and "FAILED" not in rerun


def test_what_an_app_needs_of_the_baseline_is_bisected_back(minimised):
    """The smaps app needs PROC_PAGE_MONITOR, which the baseline's boot does not: the first try
    (the whole delta out) fails on the app's workload, the next tries put groups back, and the
    packaged kernel has the option, as its app check shows."""
    dists, first, _ = minimised
    dist = dists["minimise_e2e:smaps-kernel"]
    vb = json.loads((dist / "verified-baseline.json").read_text())
    record = json.loads((dist / "minimise.json").read_text())
    assert "PROC_PAGE_MONITOR" in vb["removed"], vb["removed"]
    tries = record["tries"]
    assert not tries[0]["passed"], tries[0]
    assert "FAIL minimise_e2e:smaps: the workload exited with status 1" in tries[0]["reason"]
    assert 1 < len(tries) <= SMAPS_TRIES
    assert all(t["left_out"] < tries[0]["left_out"] for t in tries[1:])
    assert all(t["passed"] or "FAIL minimise_e2e:smaps" in t["reason"] for t in tries)
    config = parse_config((dist / "config").read_text())
    assert config.get("PROC_PAGE_MONITOR") == "y"
    assert json.loads((dist / "report.json").read_text())["all_apps_passed"]
    assert "minimise_e2e:smaps-kernel: minimisation try 2:" in first
