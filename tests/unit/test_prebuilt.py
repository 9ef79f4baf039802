"""Prebuilt kernel packages: release names, the version check against the source, module load
order from `.modinfo` (real ELF objects compiled with gcc stand in for module files), and the
outermost-frame parsing behind object sizes."""

from __future__ import annotations

import subprocess

import pytest

from kernel_rules.domain.prebuilt.debian import (
    PrebuiltError,
    _outer_files,
    check_versions,
    load_order,
    release_of,
)
from tests.conftest import require_tools


def test_release_of_image_and_debug_packages():
    assert release_of("linux-image-6.1.0-56-cloud-amd64-unsigned") == "6.1.0-56-cloud-amd64"
    assert release_of("linux-image-6.1.0-56-cloud-amd64-dbg") == "6.1.0-56-cloud-amd64"
    with pytest.raises(PrebuiltError, match="not a linux-image package"):
        release_of("nginx-light")


def test_versions_must_match_the_source():
    check_versions("6.1.192-2", "6.1.192-2", "6.1.192", "6.1.192-2")
    check_versions("6.1.192-7", "6.1.192-7", "6.1.192", "")  # upstream version only
    with pytest.raises(
        PrebuiltError, match=r"Debian 6\.1\.192-1 but the source is Debian 6\.1\.192-2"
    ):
        check_versions("6.1.192-1", "6.1.192-1", "6.1.192", "6.1.192-2")
    with pytest.raises(PrebuiltError, match="same build"):
        check_versions("6.1.192-2", "6.1.192-1", "6.1.192", "6.1.192-2")
    with pytest.raises(PrebuiltError, match=r"Linux 6\.1\.190-1 but the source is 6\.1\.192"):
        check_versions("6.1.190-1", "6.1.190-1", "6.1.192", "")


def _module(root, rel, depends):
    src = root / "src.c"
    src.write_text(
        f'__attribute__((section(".modinfo"), used)) static const char info[] = '
        f'"license=GPL\\0depends={depends}\\0name=x";\n'
    )
    out = root / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-c", str(src), "-o", str(out)], check=True)


def test_load_order_puts_dependencies_first(tmp_path):
    require_tools("gcc")
    pytest.importorskip("elftools")
    _module(tmp_path, "kernel/drivers/virtio/virtio_ring.ko", "")
    _module(tmp_path, "kernel/drivers/virtio/virtio.ko", "virtio_ring")
    _module(tmp_path, "kernel/net/core/failover.ko", "")
    _module(tmp_path, "kernel/drivers/net/net_failover.ko", "failover")
    _module(tmp_path, "kernel/drivers/net/virtio_net.ko", "virtio,virtio_ring,net_failover")
    _module(tmp_path, "kernel/drivers/char/hw_random/virtio-rng.ko", "virtio,virtio_ring")
    order = load_order(str(tmp_path), ["virtio_net", "virtio-rng"])
    names = [p.rsplit("/", 1)[1] for p in order]
    assert names == [
        "virtio_ring.ko",
        "virtio.ko",
        "failover.ko",
        "net_failover.ko",
        "virtio_net.ko",
        "virtio-rng.ko",
    ]
    with pytest.raises(PrebuiltError, match="no module `virtio_nett`; did you mean virtio_net"):
        load_order(str(tmp_path), ["virtio_nett"])


def test_outer_files_takes_the_last_frame_of_each_address():
    out = [
        "0xffffffff81000000",
        "include/linux/list.h:10",
        "kernel/fork.c:200",
        "0xffffffff81000010",
        "mm/slub.c:5",
        "0xffffffff81000020",
        "??:0",
    ]
    assert _outer_files(out) == ["kernel/fork.c", "mm/slub.c", "??"]
