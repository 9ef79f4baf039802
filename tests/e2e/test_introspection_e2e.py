"""End to end, for real: the layout manifests and embedded configurations of three differently
configured kernels of the same source (`examples/tailored:ipc-unminimised`, its trace kernel, and the
tinyconfig kernel `examples/minimal:kernel`), and processes listed from raw guest memory.

Each kernel is booted under QEMU with an image whose /init starts a few named processes, prints
the guest's own process list from /proc (shell builtins only, so that listing starts no process)
and waits. The host then dumps the guest's physical memory through QEMU's monitor (QMP
`pmemsave`), and `kernel_rules.domain.introspect.ps` lists the processes from the dump and the
kernel's layout.json, without debug info. The lists must be equal; the wrong kernel's manifest
must be refused. The kernels are packaged in the session's workspace.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict

import pytest

from kernel_rules.domain.introspect import guest_dump, layout
from tests.e2e.workspace import REPO

KERNELS = {
    "ipc": ("examples/tailored:ipc-unminimised", "dist/examples.tailored/ipc-unminimised"),
    "trace-kernel": ("examples/tracing:trace-kernel", "dist/examples.tracing/trace-kernel"),
    "minimal": ("examples/minimal:kernel", "dist/examples.minimal/kernel"),
}


@pytest.fixture(scope="module")
def dists(ws) -> Dict[str, Path]:
    done = ws.pants("package", *(address for address, _ in KERNELS.values()), timeout=3000)
    assert done.returncode == 0, done.output[-8000:]
    return {name: ws.root / path for name, (_, path) in KERNELS.items()}


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("introspection") / "initramfs.cpio.gz"
    path.write_bytes(guest_dump.demo_image())
    return path


def run_ps(layout: Path, dump: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_rules.domain.introspect.ps",
            "--layout",
            str(layout),
            "--json",
            str(dump),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def task_offsets(dist: Path) -> Dict[str, int]:
    task = json.loads((dist / "layout.json").read_text())["structs"]["task_struct"]
    return {"size": task["size"], **{f: v["offset"] for f, v in task["fields"].items()}}


def test_layouts_follow_the_configuration(dists):
    layouts = {name: task_offsets(path) for name, path in dists.items()}
    for name, offsets in layouts.items():
        print(name, json.dumps(offsets, sort_keys=True))
    fields = ("pid", "tgid", "comm", "tasks", "mm", "cred", "real_parent", "__state")
    assert all(f in layouts["ipc"] for f in fields)
    differ = [f for f in ("size",) + fields if layouts["ipc"][f] != layouts["minimal"][f]]
    print("ipc vs minimal differ in:", differ)
    assert differ, "two configurations with different task_struct layouts gave the same manifest"
    same = [f for f in layouts["ipc"] if layouts["ipc"][f] == layouts["trace-kernel"].get(f)]
    print(f"ipc vs its trace kernel: {len(same)} of {len(layouts['ipc'])} entries equal")
    for name, path in dists.items():
        doc = json.loads((path / "layout.json").read_text())
        config = (path / "config").read_bytes()
        assert doc["kernel"]["config_sha256"] == hashlib.sha256(config).hexdigest()
        assert doc["kernel"]["banner"].startswith("Linux version 6.1.")
        readelf = subprocess.run(
            ["readelf", "-n", str(path / "vmlinux")], capture_output=True, text=True, check=True
        ).stdout
        assert doc["kernel"]["build_id"] in readelf, name


def test_probe_agrees_with_pahole_on_the_debug_info_kernel(dists):
    """The trace kernel has DWARF: pahole (what imported kernels' layouts are read with) is a
    second source for the probe's offsets, entry by entry."""
    dist = dists["trace-kernel"]
    probe = json.loads((dist / "layout.json").read_text())["structs"]
    from_dwarf, absent = layout.pahole_layout(
        "pahole", str(dist / "vmlinux"), layout.DEFAULT_FIELDS
    )
    assert not absent
    assert from_dwarf == probe
    assert len(probe["task_struct"]["fields"]) >= 18


@pytest.fixture(scope="module")
def extract_ikconfig(tarball, tmp_path_factory) -> Path:
    """The kernel's own scripts/extract-ikconfig, from the pinned tarball."""
    script = tmp_path_factory.mktemp("scripts") / "extract-ikconfig"
    with tarfile.open(tarball) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith("/scripts/extract-ikconfig"):
                script.write_bytes(tar.extractfile(member).read())
                script.chmod(0o755)
                return script
    pytest.fail(f"{tarball} has no scripts/extract-ikconfig")


@pytest.mark.parametrize("name", ["ipc", "trace-kernel"])
def test_the_config_is_recovered_from_the_image(dists, extract_ikconfig, name):
    got = subprocess.run(
        [str(extract_ikconfig), str(dists[name] / "bzImage")], capture_output=True, check=True
    ).stdout
    assert got == (dists[name] / "config").read_bytes()


@pytest.mark.parametrize("name", ["ipc", "trace-kernel", "minimal"])
def test_processes_listed_from_raw_memory_match_the_guest(dists, image, tmp_path, name):
    listed, dump = guest_dump.boot_and_dump(dists[name] / "bzImage", image, tmp_path)
    done = run_ps(dists[name] / "layout.json", dump)
    assert done.returncode == 0, done.stderr
    found = {(p["pid"], p["comm"]) for p in json.loads(done.stdout)}
    print(f"{name}: guest listed {len(listed)}, memory gave {len(found)}")
    assert found == listed, (sorted(listed - found), sorted(found - listed))

    for other in sorted(set(dists) - {name}):
        wrong = run_ps(dists[other] / "layout.json", dump)
        print(f"{other}'s manifest on {name}'s dump:", wrong.stderr.strip())
        assert wrong.returncode == 3, wrong.stdout
        assert "another build" in wrong.stderr
    os.unlink(dump)


SCRATCH = "introspection-e2e-scratch"
EXTENDED = """
kernel_image(
    name="{name}",
    source="//third_party/linux:linux-6.1",
    base="tinyconfig",
    fragments=["../examples/minimal/boot.config"],
    debug_info=True,
    layout_fields={fields!r},
    layout_headers={headers!r},
)
"""


@pytest.fixture()
def scratch(ws):
    path = ws.root / SCRATCH
    path.mkdir(exist_ok=True)
    yield path
    shutil.rmtree(path)
    shutil.rmtree(ws.root / "dist" / SCRATCH, ignore_errors=True)


def test_the_build_file_extends_the_layout(ws, dists, scratch):
    """The minimal kernel's configuration again (its warm tree: nothing to compile), with more
    fields: a structure from another header, a nested member, and one this kernel lacks."""
    fields = ["file.f_inode", "task_struct.se.vruntime", "task_struct.numa_scan_seq"]
    (scratch / "BUILD").write_text(
        EXTENDED.format(name="more", fields=fields, headers=["linux/fs.h"])
        + EXTENDED.format(name="no-header", fields=["file.f_inode"], headers=[])
    )
    done = ws.pants("package", f"{SCRATCH}:more")
    assert done.returncode == 0, done.output[-4000:]
    doc = json.loads((ws.root / "dist" / SCRATCH / "more/layout.json").read_text())
    assert doc["structs"]["file"]["fields"]["f_inode"]["size"] == 8
    assert doc["structs"]["task_struct"]["fields"]["se.vruntime"]["size"] == 8
    assert "no member named" in doc["absent"]["task_struct.numa_scan_seq"]
    minimal = json.loads((dists["minimal"] / "layout.json").read_text())
    assert doc["structs"]["task_struct"]["size"] == minimal["structs"]["task_struct"]["size"]

    failed = ws.pants("package", f"{SCRATCH}:no-header")
    assert failed.returncode != 0
    assert f"{SCRATCH}:no-header: field `layout_fields`: struct file is not defined" in (
        failed.output
    ), failed.output[-3000:]
    assert "layout_headers" in failed.output

    (scratch / "BUILD").write_text(
        EXTENDED.format(name="bad", fields=["task_struct.pid); exit(1"], headers=[])
    )
    bad = ws.pants("package", f"{SCRATCH}:bad")
    assert bad.returncode != 0
    assert f"{SCRATCH}:bad: field `layout_fields`: 'task_struct.pid); exit(1' is not" in (
        bad.output
    ), bad.output[-3000:]
