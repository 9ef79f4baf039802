"""Module addresses: splitting traced addresses between vmlinux and module sections, and
resolving them with addr2line against a real relocatable ELF with DWARF (a gcc-compiled object
stands in for a module's debug file: both are ET_REL with per-section addresses starting at 0).
The guest's section list itself (protocol.parse_sections) is tested in test_protocol.py."""

from __future__ import annotations

import subprocess

import pytest

from kernel_rules.domain.guest.protocol import parse_sections
from kernel_rules.domain.map.modules import (
    debug_files,
    resolve_modules,
    section_sizes,
    split_addresses,
)
from tests.conftest import require_tools

SOURCE = """\
int helper(int x)
{
\treturn x * 3 + 1;
}

__attribute__((section(".init.text"))) int setup(void)
{
\treturn helper(2);
}
"""
CONSOLE = """\
[    1.0] something
KR_MODSECT demo .text 0xffffffffc0100000\r
KR_MODSECT demo .init.text 0xffffffffc0200000
KR_MODSECT demo .exit.text 0x0000000000000000
KR_MODSECT other .text 0xffffffffc0300000
KR_MODULE demo 16384 0 - Live 0xffffffffc0100000
"""


@pytest.fixture
def demo_ko(tmp_path):
    require_tools("gcc", "addr2line")
    src = tmp_path / "src/drivers/demo/demo.c"
    src.parent.mkdir(parents=True)
    src.write_text(SOURCE)
    ko = tmp_path / "debug/kernel/drivers/demo/demo.ko"
    ko.parent.mkdir(parents=True)
    subprocess.run(
        [
            "gcc",
            "-g",
            "-O0",
            "-c",
            "-fno-pie",
            f"-ffile-prefix-map={tmp_path}/src=/kernel/src",
            "drivers/demo/demo.c",
            "-o",
            str(ko),
        ],
        check=True,
        cwd=tmp_path / "src",
    )
    return ko


def test_debug_files_normalise_dashes(tmp_path):
    (tmp_path / "kernel/x").mkdir(parents=True)
    (tmp_path / "kernel/x/virtio-rng.ko").write_bytes(b"")
    assert debug_files(str(tmp_path)) == {"virtio_rng": str(tmp_path / "kernel/x/virtio-rng.ko")}


def test_split_and_resolve_against_the_debug_file(demo_ko, tmp_path):
    sizes = section_sizes(str(demo_ko))
    assert {".text", ".init.text"} <= set(sizes)
    loaded = parse_sections(CONSOLE)
    debug = debug_files(str(tmp_path / "debug"))
    text, init = loaded["demo"][".text"], loaded["demo"][".init.text"]
    vmlinux_address = 0xFFFFFFFF81000000
    addresses = [
        vmlinux_address,
        text,
        text + 4,
        init + 1,
        text + sizes[".text"],
        0xFFFFFFFFC0300000,
    ]
    split = split_addresses(addresses, loaded, debug)
    assert split.missing_debug == ["other"]
    # past the end of .text, and the module without a debug file, count as not module code
    assert split.vmlinux == sorted([vmlinux_address, text + sizes[".text"], 0xFFFFFFFFC0300000])
    assert split.sections == {
        ("demo", ".init.text"): [init + 1],
        ("demo", ".text"): [text, text + 4],
    }
    locations = resolve_modules(split, loaded, debug, ("/kernel/src/",))
    assert set(locations) == {text, text + 4, init + 1}
    helper = locations[text].outermost
    assert (helper.function, helper.file, helper.line) == ("helper", "drivers/demo/demo.c", 2)
    setup = locations[init + 1].outermost
    assert (setup.function, setup.file) == ("setup", "drivers/demo/demo.c")
    assert 6 <= setup.line <= 8
