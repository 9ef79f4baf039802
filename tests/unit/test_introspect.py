"""The layout probe's pure parts, and process listing from a synthetic physical memory image."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kernel_rules.domain.introspect import layout
from kernel_rules.domain.introspect.ps import KernelMemory, WrongKernel, processes

# What gcc 12 prints for a member this configuration does not have (line 12 of the probe).
GCC_MISSING_MEMBER = """\
In file included from /tmp/kr-layout-x/layout_probe.c:1:
/tmp/kr-layout-x/layout_probe.c: In function 'kernel_rules_layout':
/src/include/linux/stddef.h:16:33: error: 'struct task_struct' has no member named 'nosuch'
   16 | #define offsetof(TYPE, MEMBER)  __builtin_offsetof(TYPE, MEMBER)
/src/include/linux/kbuild.h:6:69: note: in definition of macro 'DEFINE'
/tmp/kr-layout-x/layout_probe.c:12:9: note: in expansion of macro 'DEFINE'
   12 |         DEFINE(kr_5_offset, offsetof(struct task_struct, nosuch));
"""


@pytest.mark.parametrize(
    "spec, ok",
    [
        ("task_struct.pid", True),
        ("task_struct.se.vruntime", True),
        ("task_struct", False),
        ("task_struct.pid); system(1", False),
        ("task struct.pid", False),
        (".pid", False),
        ("task_struct.pid[0]", False),
    ],
)
def test_field_specs(spec, ok):
    assert (layout.field_spec_problem(spec) == "") is ok


@pytest.mark.parametrize(
    "header, ok",
    [
        ("linux/fs.h", True),
        ("generated/bounds.h", True),
        ("linux/../../etc/passwd.h", False),
        ("/usr/include/stdio.h", False),
        ("linux/fs.h>\n#include <x.h", False),
        ("linux/fs", False),
    ],
)
def test_header_paths(header, ok):
    assert (layout.header_problem(header) == "") is ok


def test_probe_source_puts_one_entry_per_line_after_the_headers():
    entries = layout._entries(["task_struct.pid", "task_struct.comm", "cred.uid"])
    assert entries == [
        ("task_struct", None),
        ("task_struct", "pid"),
        ("task_struct", "comm"),
        ("cred", None),
        ("cred", "uid"),
    ]
    source = layout.probe_source(entries, ["linux/sched.h", "linux/cred.h"])
    probe_lines = source.splitlines()
    first = layout._first_entry_line(["linux/sched.h", "linux/cred.h"])
    assert "kr_0_size" in probe_lines[first - 1] and "struct task_struct" in probe_lines[first - 1]
    assert "kr_4_offset" in probe_lines[first + 3] and "cred, uid" in probe_lines[first + 3]


def test_parse_probe_reads_kbuild_define_lines():
    asm = (
        '.ascii "->kr_0_size $6208 sizeof(struct task_struct)"\t#\n'
        '.ascii "->kr_1_offset $696 offsetof(struct task_struct, pid)"\t#\n'
        '.ascii "->kr_1_fsize $4 sizeof(((struct task_struct *)0)->pid)"\t#\n'
    )
    assert layout.parse_probe(asm) == {0: {"size": 6208}, 1: {"offset": 696, "fsize": 4}}


def test_failed_entries_blame_the_probe_line_not_the_include():
    first = 8  # entry 4 is on line 12
    assert layout.failed_entries(GCC_MISSING_MEMBER, first, 10) == {
        4: "'struct task_struct' has no member named 'nosuch'"
    }
    assert layout.failed_entries("gcc: fatal error: no input files", first, 10) == {}


def test_symbol_addresses_from_system_map():
    system_map = (
        "ffffffff81000000 T _text\nffffffff81a23600 D init_task\nffffffff81000010 T other\n"
    )
    assert layout.symbol_addresses(system_map) == {
        "_text": "0xffffffff81000000",
        "init_task": "0xffffffff81a23600",
    }


# A synthetic machine: the image loaded at physical 0x1000000 (phys_base 0), three tasks.
BANNER = "Linux version 6.1.0 (test) #1\n"
KMAP = layout.KERNEL_MAP_BASE
DMAP = layout.DIRECT_MAP_BASE
OFF = {"tasks": 16, "pid": 40, "tgid": 44, "comm": 48, "mm": 8}
SYMBOLS = {"linux_banner": 0xFFFFFFFF81800000, "init_task": 0xFFFFFFFF81A00000}
BUILD_ID = "ab" * 20
BUILD_ID_AT = 0xFFFFFFFF81900000


def _manifest(**changes) -> dict:
    doc = {
        "kernel": {"release": "6.1.0", "banner": BANNER, "build_id": BUILD_ID},
        "build_id_address": hex(BUILD_ID_AT),
        "memory": {
            "kernel_map_base": hex(KMAP),
            "direct_map_base": hex(DMAP),
            "direct_map_base_symbol": None,
        },
        "symbols": {k: hex(v) for k, v in SYMBOLS.items()},
        "structs": {
            "task_struct": {
                "size": 64,
                "fields": {
                    "tasks": {"offset": OFF["tasks"], "size": 16},
                    "pid": {"offset": OFF["pid"], "size": 4},
                    "tgid": {"offset": OFF["tgid"], "size": 4},
                    "comm": {"offset": OFF["comm"], "size": 16},
                    "mm": {"offset": OFF["mm"], "size": 8},
                },
            }
        },
    }
    doc.update(changes)
    return doc


def _dump(build_id: str = BUILD_ID, phys_base: int = 0) -> bytearray:
    mem = bytearray(0x3000000)

    def put(virt: int, data: bytes) -> None:
        phys = virt - KMAP + phys_base if virt >= KMAP else virt - DMAP
        mem[phys : phys + len(data)] = data

    put(SYMBOLS["linux_banner"], BANNER.encode() + b"\0")
    put(BUILD_ID_AT, bytes.fromhex(build_id))
    mem[0x100 : 0x100 + len(BANNER) - 1] = BANNER.encode()[:-1]  # the log buffer's copy
    tasks = [(SYMBOLS["init_task"], 0, "swapper", 0)]
    tasks += [
        (DMAP + 0x2000000 + i * 0x1000, pid, comm, mm)
        for i, (pid, comm, mm) in enumerate([(1, "init", 0xFFFF888000100000), (2, "kthreadd", 0)])
    ]
    for i, (base, pid, comm, mm) in enumerate(tasks):
        nxt = tasks[(i + 1) % len(tasks)][0] + OFF["tasks"]
        put(base + OFF["tasks"], nxt.to_bytes(8, "little"))
        put(base + OFF["pid"], pid.to_bytes(4, "little"))
        put(base + OFF["tgid"], pid.to_bytes(4, "little"))
        put(base + OFF["comm"], comm.encode().ljust(16, b"\0"))
        put(base + OFF["mm"], mm.to_bytes(8, "little"))
    return mem


def test_processes_are_read_through_both_mappings():
    found = processes(KernelMemory(bytes(_dump()), _manifest()))
    assert [(p.pid, p.comm, p.kernel_thread) for p in found] == [
        (1, "init", False),
        (2, "kthreadd", True),
    ]


def test_a_relocated_image_is_found_by_its_banner():
    memory = KernelMemory(bytes(_dump(phys_base=0x200000)), _manifest())
    assert memory.phys_base == 0x200000
    assert [p.comm for p in processes(memory)] == ["init", "kthreadd"]


def test_another_build_with_the_same_banner_is_refused_by_its_build_id():
    with pytest.raises(WrongKernel, match="build id cdcd.*another build of 6.1.0"):
        KernelMemory(bytes(_dump(build_id="cd" * 20)), _manifest())


def test_a_kernel_with_another_layout_is_refused():
    moved = _manifest(symbols={**_manifest()["symbols"], "linux_banner": hex(0xFFFFFFFF81800040)})
    with pytest.raises(WrongKernel, match="not at linux_banner's place"):
        KernelMemory(bytes(_dump()), moved)


def test_another_kernel_is_refused_naming_its_banner():
    other = _manifest(
        kernel={"release": "6.1.0", "banner": "Linux version 9.9\n", "build_id": BUILD_ID}
    )
    with pytest.raises(WrongKernel, match="nowhere in the dump.*Linux version 6.1.0 \\(test\\)"):
        KernelMemory(bytes(_dump()), other)


def test_command_line_exit_codes(tmp_path):
    dump, good, bad = tmp_path / "mem.raw", tmp_path / "good.json", tmp_path / "bad.json"
    dump.write_bytes(bytes(_dump()))
    good.write_text(json.dumps(_manifest()))
    bad.write_text(json.dumps(_manifest(build_id_address=hex(BUILD_ID_AT + 8))))
    run = [sys.executable, "-m", "kernel_rules.domain.introspect.ps", "--layout"]
    ok = subprocess.run(run + [str(good), str(dump)], capture_output=True, text=True)
    assert ok.returncode == 0 and "kthreadd" in ok.stdout and "[kthreadd]" in ok.stdout
    wrong = subprocess.run(run + [str(bad), str(dump)], capture_output=True, text=True)
    assert wrong.returncode == 3 and "another build" in wrong.stderr
    missing = subprocess.run(
        run + [str(good), str(tmp_path / "none")], capture_output=True, text=True
    )
    assert missing.returncode == 2


def test_image_identity_reads_the_build_id_and_a_string_like_readelf(tmp_path):
    source = tmp_path / "banner.c"
    source.write_text(
        'const char linux_banner[] = "Linux version 0.0 (test)\\n";\nint main(void){return 0;}\n'
    )
    binary = tmp_path / "banner"
    subprocess.run(
        ["gcc", "-O0", "-no-pie", "-Wl,--build-id=sha1", "-o", str(binary), str(source)],
        check=True,
    )
    notes = subprocess.run(["readelf", "-n", str(binary)], capture_output=True, text=True).stdout
    symbols = subprocess.run(["nm", str(binary)], capture_output=True, text=True).stdout
    address = next(
        int(line.split()[0], 16) for line in symbols.splitlines() if "linux_banner" in line
    )
    identity = layout.image_identity(str(binary), address)
    assert identity["build_id"] and f"Build ID: {identity['build_id']}" in notes
    assert identity["banner"] == "Linux version 0.0 (test)\n"


def test_missing_header_looks_in_the_source_include_directories(tmp_path):
    (tmp_path / "include/linux").mkdir(parents=True)
    (tmp_path / "include/linux/fs.h").write_text("")
    (tmp_path / "arch/x86/include/asm").mkdir(parents=True)
    (tmp_path / "arch/x86/include/asm/page.h").write_text("")
    assert not layout.missing_header(str(tmp_path), "x86_64", "linux/fs.h")
    assert not layout.missing_header(str(tmp_path), "x86_64", "asm/page.h")
    assert layout.missing_header(str(tmp_path), "x86_64", "linux/nosuch.h")
