"""End to end on Debian's prebuilt cloud kernel (`examples/debian-cloud`), for real: the pinned
packages, a traced boot that loads the virtio modules, the redis app, module addresses mapped
through the modules' debug files, the composition over Debian's whole Kconfig universe without
module support, and clear errors for packages that do not fit.

Needs `third_party/setup.sh --debian-cloud` (./run-tests runs it when root). Building a tailored
Debian kernel takes too long for the suite: examples/debian-cloud and benchmarks/distro.py do it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from kernel_rules.domain.kconfig.fragments import parse_config
from kernel_rules.domain.compose.tailor import holds
from tests.conftest import host_python

REPO = Path(__file__).resolve().parents[2]
DEBS = REPO / "third_party/debian/debs"
DIST = Path("dist/examples.debian-cloud")


def _debs():
    debs = sorted(DEBS.glob("*.deb"))
    if len(debs) != 2:
        pytest.fail(
            f"{DEBS} does not hold the two pinned packages: run "
            "third_party/setup.sh --debian-cloud (as root)"
        )
    return {("debug" if "-dbg_" in d.name else "image"): d for d in debs}


@pytest.fixture(scope="module")
def traced(ws):
    _debs()
    result = ws.pants("package", "examples/debian-cloud:virtio", "examples/debian-cloud:redis")
    assert result.returncode == 0, result.output[-6000:]
    return ws.root / DIST


def _set(traced: Path, name: str) -> dict:
    return json.loads((traced / name / "config-set.json").read_text())


def test_boot_loads_the_virtio_modules_and_maps_their_code(traced, kernel_srctree):
    doc = _set(traced, "virtio")
    mods = doc["stats"]["modules"]
    assert {"virtio_net", "virtio_pci", "virtio_rng", "virtio_ring"} <= set(mods["loaded"])
    assert mods["without_debug_file"] == []
    for name in ("virtio_net", "virtio_pci", "virtio_ring"):
        t = mods["traced"][name]
        assert t["addresses"] > 100 and t["mapped"] == t["addresses"], (name, t)
    reqs = doc["requirements"]
    # Debian builds these as modules: the trace kernel has them =m, the requirement is "on"
    for symbol, directory in (
        ("VIRTIO_NET", "drivers/net/virtio_net.c"),
        ("VIRTIO_PCI", "drivers/virtio/"),
        ("HW_RANDOM_VIRTIO", "drivers/char/hw_random/"),
    ):
        assert reqs[symbol]["value"] == "ym", symbol
        assert any(e.startswith(directory) for e in reqs[symbol]["evidence"]), reqs[symbol]
        assert reqs[symbol]["module_lines"] > 0, symbol  # lines executed in the module itself
    # module evidence points at real lines of the pinned source
    for e in reqs["VIRTIO_NET"]["evidence"]:
        path, line = e.rsplit(":", 1)
        assert int(line) <= len((kernel_srctree / path).read_text(errors="replace").splitlines())
    assert doc["stats"]["unmapped_addresses"] < 0.01 * doc["stats"]["addresses"]


def test_redis_app_passes_and_needs_epoll_and_inet(traced):
    doc = _set(traced, "redis")
    assert doc["kind"] == "app" and doc["stats"]["addresses"] > 10000
    for symbol in ("EPOLL", "INET", "NET"):
        assert doc["requirements"][symbol]["value"] in ("y", "ym"), symbol
    console = (traced / "redis/console.log").read_text()
    assert "KR_WORKLOAD_STATUS 0 " in console  # the end of the workload's framed report
    assert re.search(
        r"GET: [0-9.]+ requests per second", (traced / "redis/workload.log").read_text()
    )
    assert (traced / "redis/initramfs.cpio.gz").stat().st_size > 1_000_000


def test_composition_over_debian_builds_module_code_in(
    traced, tmp_path, tarball, tarball_sha256, session_dir
):
    debs = _debs()
    subprocess.run(
        f"dpkg-deb --fsys-tarfile {debs['image']} | tar -x -C {tmp_path} "
        "--wildcards './boot/config-*'",
        shell=True,
        check=True,
    )
    config = next((tmp_path / "boot").glob("config-*"))
    import shutil

    import kconfiglib  # pure Python: shipped into sandboxes the same way by the rules

    (tmp_path / "py").mkdir()
    shutil.copy(kconfiglib.__file__, tmp_path / "py")
    env = {
        "PATH": "/usr/bin:/bin",
        "LC_ALL": "C",
        "HOME": "/nonexistent",
        "PYTHONPATH": f"{REPO}:{REPO}/third_party/python/sandbox/site:{tmp_path / 'py'}",
    }
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            host_python(),
            "-m",
            "kernel_rules.domain.compose.tailor",
            "--tarball",
            str(tarball),
            "--sha256",
            tarball_sha256,
            "--cache",
            str(session_dir / "cache"),
            "--jobs",
            "2",
            "--target",
            "test:debian",
            "--trace-config",
            str(config),
            "--objective",
            "options",
            "--set",
            f"examples/debian-cloud:virtio={traced / 'virtio/config-set.json'}",
            "--set",
            f"examples/debian-cloud:redis={traced / 'redis/config-set.json'}",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    final = parse_config((out / ".config").read_text())
    assert final.get("MODULES", "n") == "n"
    for symbol in ("VIRTIO_NET", "VIRTIO_PCI", "HW_RANDOM_VIRTIO", "EPOLL", "INET"):
        assert final.get(symbol) == "y", symbol
    doc = json.loads((out / "requirements.json").read_text())
    relaxed = {r["requirement"].split("=")[0] for r in doc["relaxed"]}
    assert "CONFIG_MODULES" in relaxed  # the module loader ran at boot; built in, it does not
    for symbol, values in doc["requirements"].items():
        got = final.get(symbol, "n")
        for value in values:  # bool/tristate requirements (an int like BASE_SMALL is not one)
            if value != "holds" and got in ("y", "m", "n"):
                assert holds(value, got), (symbol, value)
    stats = json.loads((out / "compose.json").read_text())
    assert stats["enabled"] < stats["trace_kernel_enabled"] / 2


DEMO_BUILD = """
linux_source(name="other-revision", tarball="linux-source-6.1.tar.xz", sha256="{sha}",
             version="{upstream}", package_version="{other_version}")
prebuilt_kernel(name="mismatch", source=":other-revision", image_deb="{image}",
                image_sha256="{image_sha}", debug_deb="{debug}", debug_sha256="{debug_sha}")
prebuilt_kernel(name="bad-sha", source="//third_party/linux:linux-6.1", image_deb="{image}",
                image_sha256="{zero}", debug_deb="{debug}", debug_sha256="{debug_sha}")
kernel_baseline(name="on-mismatch", kernel=":mismatch")
kernel_baseline(name="on-bad-sha", kernel=":bad-sha")
kernel_baseline(name="unknown-module", kernel="//third_party/debian:cloud-amd64",
                modules=["virtio_nett"])
kernel_baseline(name="modules-on-built-kernel", kernel="//examples/tracing:trace-kernel",
                modules=["virtio_net"])
"""


def test_packages_that_do_not_fit_are_clear_errors(ws, tarball_sha256):
    debs = _debs()
    demo = ws.root / "demo_debian"
    demo.mkdir(exist_ok=True)
    for name in ("linux-source-6.1.tar.xz",):
        if not (demo / name).exists():
            os.link(ws.root / "third_party/linux" / name, demo / name)
    for deb in debs.values():
        if not (demo / deb.name).exists():
            os.link(deb, demo / deb.name)
    lock = dict(
        line.split("=", 1)
        for line in (REPO / "third_party/debian/cloud-kernel.lock").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    upstream = lock["version"].split("-")[0]
    other_version = upstream + "-0"  # another Debian revision of the same upstream version
    (demo / "BUILD").write_text(
        DEMO_BUILD.format(
            upstream=upstream,
            other_version=other_version,
            sha=tarball_sha256,
            image=debs["image"].name,
            debug=debs["debug"].name,
            image_sha=lock["image_sha256"],
            debug_sha=lock["debug_sha256"],
            zero="0" * 64,
        )
    )
    cases = {
        "on-mismatch": f"the prebuilt kernel is Debian {lock['version']} but the source is "
        f"Debian {other_version}",
        "on-bad-sha": "sha256 mismatch for demo_debian/linux-image-",
        "unknown-module": "field `modules`: no module `virtio_nett`; did you mean virtio_net",
        "modules-on-built-kernel": "field `modules` needs a `prebuilt_kernel` trace kernel",
    }
    for target, message in cases.items():
        result = ws.pants("package", f"demo_debian:{target}")
        assert result.returncode != 0, target
        assert message in result.output, (target, result.output[-3000:])
        assert "Traceback" not in result.output, result.output[-3000:]
