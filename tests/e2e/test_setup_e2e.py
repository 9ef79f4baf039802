"""The setup's Debian pins, for real: drift of the installed source package, a pin gone from the
archive, and `--move-pins` on a scratch copy of the repository. They need root and apt, change the
installed version of linux-source-6.1 while they run, and restore it afterwards."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("apt-get"), reason="needs root and apt-get"
)

LOCKED_FILES = (
    "third_party/linux/linux-source.lock",
    "third_party/linux/BUILD",
    "third_party/debian/cloud-kernel.lock",
    "third_party/debian/BUILD",
)


def _lock(path: Path) -> dict:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )


SOURCE = _lock(REPO / "third_party/linux/linux-source.lock")
PACKAGE, PINNED = SOURCE["debian_package"], SOURCE["debian_version"]


def _installed(package: str) -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status} ${Version}", package], capture_output=True, text=True
    )
    prefix = "install ok installed "
    return proc.stdout[len(prefix) :] if proc.stdout.startswith(prefix) else ""


def _archive_versions(package: str) -> list:
    out = subprocess.run(["apt-cache", "madison", package], capture_output=True, text=True).stdout
    return [line.split("|")[1].strip() for line in out.splitlines() if "|" in line]


def _apt(*args: str) -> None:
    subprocess.run(
        ["apt-get", "-y", "-qq", *args],
        check=True,
        capture_output=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        timeout=600,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _scratch(tmp_path: Path) -> Path:
    """The files the setup reads, without anything it fetches or makes."""
    root = tmp_path / "repo"
    shutil.copytree(
        REPO / "third_party",
        root / "third_party",
        ignore=shutil.ignore_patterns("*.tar.xz", "*.partial", "sandbox", "debs", "__pycache__"),
    )
    shutil.copytree(REPO / "docs", root / "docs")
    for name in ("pants", "README.md"):
        shutil.copy(REPO / name, root / name)
    return root


def _other_version() -> str:
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=300)
    others = [v for v in _archive_versions(PACKAGE) if v != PINNED]
    if not others:
        pytest.skip(f"Debian's archive has no {PACKAGE} but the pinned {PINNED}")
    return others[0]


@pytest.fixture
def source_package_restored():
    """Puts linux-source-6.1 back at the version it had before the test (or removes it)."""
    before = _installed(PACKAGE)
    yield before
    if _installed(PACKAGE) != before:
        _apt("install", "--allow-downgrades", f"{PACKAGE}={before}") if before else _apt(
            "remove", PACKAGE
        )
    assert _installed(PACKAGE) == before


def test_setup_replaces_another_installed_version_with_the_pin(tmp_path, source_package_restored):
    other = _other_version()
    _apt("install", "--allow-downgrades", "--no-install-recommends", f"{PACKAGE}={other}")
    assert _installed(PACKAGE) == other
    root = _scratch(tmp_path)
    proc = subprocess.run(
        [str(root / "third_party/setup.sh")], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _installed(PACKAGE) == PINNED
    assert _sha256(root / "third_party/linux/linux-source-6.1.tar.xz") == SOURCE["sha256"]
    lines = proc.stderr.splitlines()
    assert all(line.startswith("kernel_rules setup: ") for line in lines), proc.stderr
    assert f"[2/4] Debian packages: installed {PACKAGE}={PINNED}" in proc.stderr
    assert f"{PACKAGE} is {PINNED} (pinned)" in proc.stderr
    assert "WARNING" not in proc.stderr and "pip" not in proc.stderr.lower()
    assert "ready in" in lines[-1] and "examples/tailored:ipc" in lines[-1]
    check = subprocess.run([str(root / "third_party/setup.sh"), "--check"], timeout=60)
    assert check.returncode == 0


def test_a_pin_gone_from_the_archive_names_the_command_that_moves_it(
    tmp_path, source_package_restored
):
    root = _scratch(tmp_path)
    lock = root / "third_party/linux/linux-source.lock"
    lock.write_text(
        lock.read_text().replace(f"debian_version={PINNED}", "debian_version=6.1.192-99")
    )
    proc = subprocess.run(
        [str(root / "third_party/setup.sh")], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 1
    assert (
        f"{PACKAGE} 6.1.192-99 is pinned, but Debian's archive no longer has it" in proc.stderr
    ), proc.stderr[-3000:]
    assert "third_party/setup.sh --move-pins" in proc.stderr
    assert PINNED in proc.stderr  # the versions the archive has
    assert _installed(PACKAGE) == source_package_restored  # nothing was installed


def test_move_pins_moves_every_pin_together_and_back(tmp_path):
    target = _other_version()
    root = _scratch(tmp_path)
    originals = {name: (root / name).read_bytes() for name in LOCKED_FILES}
    real = {name: (REPO / name).read_bytes() for name in LOCKED_FILES}

    proc = subprocess.run(
        [str(root / "third_party/setup.sh"), "--move-pins", target],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"moved from Debian {PINNED} to {target}" in proc.stdout
    assert "third_party/debian/cloud-kernel.lock: image_package: " in proc.stdout
    assert "docs/debian-cloud.md:" in proc.stdout  # still mentions the old pins: to re-check
    assert "README.md" in proc.stdout and "re-check" in proc.stdout

    cloud = _lock(root / "third_party/debian/cloud-kernel.lock")
    source = _lock(root / "third_party/linux/linux-source.lock")
    assert cloud["version"] == source["debian_version"] == target
    for kind in ("image", "debug"):
        show = subprocess.run(
            ["apt-cache", "show", f"{cloud[kind + '_package']}={target}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"SHA256: {cloud[kind + '_sha256']}" in show
        assert "Source: linux" in show
    # The tarball's sha256, computed here from the package itself.
    dl = tmp_path / "dl"
    dl.mkdir()
    subprocess.run(
        ["apt-get", "download", "-q", f"{PACKAGE}={target}"],
        cwd=dl,
        check=True,
        capture_output=True,
        timeout=600,
    )
    subprocess.run(["dpkg-deb", "-x", str(next(dl.glob("*.deb"))), str(dl / "x")], check=True)
    assert _sha256(dl / "x" / SOURCE["path_in_package"].lstrip("/")) == source["sha256"]
    build = (root / "third_party/linux/BUILD").read_text()
    assert f'sha256="{source["sha256"]}"' in build and f'package_version="{target}"' in build
    assert f'version="{target.split("-")[0]}"' in build
    debian_build = (root / "third_party/debian/BUILD").read_text()
    assert f'image_deb="debs/{cloud["image_package"]}_{target}_amd64.deb"' in debian_build
    assert f'debug_sha256="{cloud["debug_sha256"]}"' in debian_build
    check = subprocess.run(
        ["/usr/bin/python3", str(root / "third_party/pins.py"), "check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr

    back = subprocess.run(
        [str(root / "third_party/setup.sh"), "--move-pins", PINNED],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert back.returncode == 0, back.stderr[-3000:]
    assert {name: (root / name).read_bytes() for name in LOCKED_FILES} == originals
    assert {name: (REPO / name).read_bytes() for name in LOCKED_FILES} == real


def test_the_example_servers_are_installed_but_not_enabled():
    """`setup.sh --debian-cloud` (run by ./run-tests as root) leaves no example service enabled
    for the host's next boot, and restores the host's policy-rc.d."""
    example = _lock(REPO / "third_party/debian/example-packages.lock")
    if not all(_installed(p) for p in example):
        pytest.skip("the example servers are not installed (third_party/setup.sh --debian-cloud)")
    wants = Path("/etc/systemd/system/multi-user.target.wants")
    for unit in ("nginx.service", "redis-server.service", "memcached.service"):
        assert not (wants / unit).exists(), f"{unit} is enabled on the host"
    policy = Path("/usr/sbin/policy-rc.d")
    assert not policy.exists() or policy.read_text() != "#!/bin/sh\nexit 101\n", (
        "the setup's policy-rc.d was left behind"
    )
