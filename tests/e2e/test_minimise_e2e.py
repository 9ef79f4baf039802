"""End to end, for real: verified minimisation builds and boots candidates, records every try,
packages the last passing one, and a rerun (pantsd restarted) repeats no build and no boot."""

from __future__ import annotations

import json
import re

import pytest

from kernel_rules.domain.kconfig.fragments import parse_config

TRIES = 2
BUILD = f"""
tailored_kernel(
    name="ipc",
    baseline="//examples/tracing:qemu-q35",
    apps=["//examples/tracing:ipc"],
    minimise="baseline",
    minimise_max_tries={TRIES},
)
"""
TARGET = "minimise_e2e:ipc"


@pytest.fixture(scope="module")
def minimised(ws):
    d = ws.root / "minimise_e2e"
    d.mkdir(exist_ok=True)
    (d / "BUILD").write_text(BUILD)
    first = ws.pants("package", "test", TARGET, timeout=3600)
    assert first.returncode == 0, first.output[-8000:]
    ws.stop_pantsd()
    rerun = ws.pants("package", "test", TARGET, timeout=1200)
    assert rerun.returncode == 0, rerun.output[-8000:]
    return ws.root / "dist/minimise_e2e/ipc", first.output, rerun.output


def test_every_try_is_recorded_with_a_real_verdict(minimised):
    dist, first, _ = minimised
    record = json.loads((dist / "minimise.json").read_text())
    soft = json.loads((dist / "soft.json").read_text())
    assert record["format"] == "kernel_rules/minimisation@1" and record["mode"] == "baseline"
    assert 1 <= len(record["tries"]) <= TRIES
    assert record["complete"] == (len(record["tries"]) < TRIES) or record["complete"]
    items = {i for g in soft["groups"] for i in g["symbols"]}
    assert set(record["removed"]) <= items
    assert {k["item"] for k in record["kept"]} | set(record["removed"]) == items
    for t in record["tries"]:
        assert f"minimisation try {t['try']}:" in first
        assert t["enabled"] > 0 and t["text"] > 0, t
        if not t["passed"]:
            assert t["reason"].strip(), t  # the app check's own failure output
    # the first try leaves out every soft requirement at once
    assert record["tries"][0]["left_out"] == len(items)


def test_the_packaged_kernel_is_the_last_passing_try(minimised):
    dist, _, _ = minimised
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
    assert ("incomplete" in md) == (not record["complete"])


def test_a_rerun_does_no_build_and_no_boot(minimised):
    _, first, rerun = minimised
    assert re.search(r"Starting: Build kernel minimise_e2e:ipc", first)
    assert not re.search(r"Starting: Build kernel", rerun), rerun[-4000:]
    assert not re.search(r"Starting: Run \d+ app workload", rerun), rerun[-4000:]
    assert not re.search(r"Starting: Compose", rerun), rerun[-4000:]
