"""Static syscall analysis (domain.syscalls): disassembly parsing, reachability, the image, the
syscall table and the syscall -> Kconfig table."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from kernel_rules.domain.guest.elfdeps import closure
from kernel_rules.domain.guest.initramfs import cpio_newc, gzip_deterministic, regular, symlink
from kernel_rules.domain.map.conditions import FALSE, TRUE, Not, Sym, Unknown, conj, disj
from kernel_rules.domain.syscalls import analyse, binaries, disasm, image, kconfig_table, reach
from kernel_rules.domain.syscalls import table

OBJDUMP = shutil.which("objdump")
GCC = shutil.which("gcc")
needs_tools = pytest.mark.skipif(not (OBJDUMP and GCC), reason="needs gcc and objdump")

PROGRAM = r"""
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((noinline)) static long raw_getpid(void)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(39) : "rcx", "r11", "memory");
	return r;
}

int main(int argc, char **argv)
{
	(void)argv;
	if (argc == 9)
		return (int)raw_getpid();      /* never taken at run time */
	if (argc == 7)
		syscall(SYS_getppid);          /* never taken either: libc's wrapper */
	return 0;
}
"""


def _compile(tmp_path, static: bool) -> str:
    src = tmp_path / "prog.c"
    src.write_text(PROGRAM)
    out = tmp_path / ("prog-static" if static else "prog")
    subprocess.run(
        [GCC, "-O2", *(["-static"] if static else []), "-o", str(out), str(src)], check=True
    )
    return str(out)


def _host_image(paths, extra=()):
    files = {}
    for p in paths:
        with open(p, "rb") as f:
            files[os.path.normpath(p)] = (stat.S_IFREG | 0o755, f.read())
    for path, mode, data in extra:
        files[path] = (mode, data)
    return image.Image(files)


# --- the disassembly --------------------------------------------------------------------------

OBJDUMP_TEXT = """
0000000000001000 <f>:
    1000:\tmov    $0x3c,%edx
    1005:\tmov    %edx,%eax
    1007:\tsyscall
    1009:\tmov    $0x1,%eax
    100e:\tje     1015 <f+0x15>
    1010:\tsyscall
    1012:\tcall   2000 <syscall>
    1015:\tsyscall
    1017:\tmov    $0xe7,%edi
    101c:\tcall   2000 <syscall>
    1021:\tcall   *0x2fe2(%rip)        # 4008 <puts@GLIBC_2.2.5>
    1027:\tcall   *%rax
    1029:\tlea    0x10(%rip),%rdi        # 1040 <g>
    1030:\tret

0000000000001040 <g>:
    1040:\tmov    $0x27,%eax
    1045:\tadd    $0x1,%eax
    1048:\tsyscall
    104a:\tret

0000000000002000 <syscall>:
    2000:\tmov    %rdi,%rax
    2003:\tsyscall
    2005:\tret
"""


def test_numbers_in_the_same_block():
    insns, labels = disasm.parse(OBJDUMP_TEXT)
    assert labels[0x1040] == "g"
    starts = {a: disasm.clean_name(n) for a, n in labels.items()}
    funcs = disasm.function_facts(insns, starts, lambda a: 0x1000 <= a < 0x3000, {0x2000})
    f = funcs[0x1000]
    by_address = {s.address: (s.number, s.via) for s in f.sites}
    assert by_address[0x1007] == (60, "syscall")  # through a register copy
    assert by_address[0x1010] == (None, "syscall")  # after a branch: a new block
    assert by_address[0x1015] == (None, "syscall")  # a jump target starts a block
    assert by_address[0x1012] == (None, "wrapper")
    assert by_address[0x101C] == (231, "wrapper")  # syscall(SYS_exit_group) via %edi
    assert f.calls == {0x2000}
    assert f.slots == {0x4008}
    assert f.code_refs == {0x1040}
    assert f.indirect == 1
    assert funcs[0x1040].sites[0].number is None  # add: the value is no longer known


def test_clean_name():
    assert disasm.clean_name("write@@GLIBC_2.2.5") == "write"
    assert disasm.clean_name("puts@plt") == "puts"
    assert disasm.clean_name("f+0x10") == "f"


# --- real programs ----------------------------------------------------------------------------


@needs_tools
def test_static_program_paths_not_taken_are_found(tmp_path):
    prog = _compile(tmp_path, static=True)
    obj = binaries.load("/usr/bin/prog", prog, OBJDUMP)
    result = reach.reachable_syscalls(obj, lambda o, n: None)
    sites = {(s.number, s.via, s.function) for s in result.sites}
    assert (39, "syscall", "raw_getpid") in sites
    assert (110, "wrapper", "main") in sites
    assert 231 in result.numbers()  # exit_group, from libc's exit path
    wrapper_body = [s for s in result.sites if s.function == "syscall" and s.via == "syscall"]
    assert not wrapper_body  # the wrapper's own instruction is not an unknown number


@needs_tools
def test_dynamic_program_is_charged_with_what_it_imports(tmp_path):
    prog = _compile(tmp_path, static=False)
    img = _host_image(closure([prog]))
    loader = analyse.Loader(img, OBJDUMP, str(tmp_path))
    obj = loader.load(os.path.normpath(prog))
    result = reach.reachable_syscalls(obj, loader.needed)
    libc = next(o for o in result.objects if "libc.so" in o)
    assert any("ld-linux" in o for o in result.objects)
    numbers = result.numbers()
    assert 39 in numbers and 110 in numbers
    libc_obj = loader.cache[libc]
    reached_in_libc = {s.function for s in result.sites if s.binary == libc}
    assert reached_in_libc  # exit, through __libc_start_main
    every_site_in_libc = {
        s.number for f in libc_obj.functions.values() for s in f.sites if s.number is not None
    }
    charged = {s.number for s in result.sites if s.binary == libc and s.number is not None}
    assert charged < every_site_in_libc  # not all of libc


# --- unreadable files -------------------------------------------------------------------------


def _elf_header(machine: int, elf_class: int = 2, sections: int = 0) -> bytes:
    header = bytearray(64)
    header[:7] = b"\x7fELF" + bytes([elf_class, 1, 1])
    header[16:18] = (2).to_bytes(2, "little")
    header[18:20] = machine.to_bytes(2, "little")
    if sections:  # section headers far beyond the end of the file
        header[40:48] = (1 << 40).to_bytes(8, "little")
        header[58:60] = (64).to_bytes(2, "little")
        header[60:62] = sections.to_bytes(2, "little")
    return bytes(header)


@needs_tools
@pytest.mark.parametrize(
    "data, message",
    [
        (b"#!/bin/sh\necho hi\n", "not an ELF file"),
        (_elf_header(183), "machine 183 (not x86-64"),
        (_elf_header(3, elf_class=1), "32-bit ELF"),
        (_elf_header(62, sections=5), "not a readable ELF file"),
        (_elf_header(62) + b"\xff" * 16, "objdump found no instructions"),
    ],
)
def test_unreadable_binaries_are_named_and_the_rest_goes_on(tmp_path, data, message):
    prog = _compile(tmp_path, static=True)
    img = _host_image([prog], [("/usr/bin/odd", stat.S_IFREG | 0o755, data)])
    row = {"number": 39, "entry": "sys_getpid", "requires": {}, "formula": True}
    kconfig = {"syscalls": {"getpid": {**row, "condition": "true"}}}
    doc = analyse.analyse(
        img,
        {**kconfig, "format": kconfig_table.FORMAT},
        "",
        {},
        [],
        OBJDUMP,
        "//t:app",
        ["/usr/bin/odd", os.path.normpath(prog)],
    )
    assert any(u.startswith("/usr/bin/odd: ") and message in u for u in doc["unreadable"])
    assert "getpid" in doc["binaries"][os.path.normpath(prog)]["syscalls"]
    assert "getpid" in doc["static_in_app"]


def test_loading_a_non_elf_file_raises_a_clear_error(tmp_path):
    f = tmp_path / "script"
    f.write_text("#!/bin/sh\n")
    with pytest.raises(binaries.Unreadable, match="/app/script: not an ELF file"):
        binaries.load("/app/script", str(f), OBJDUMP or "objdump")


# --- the image --------------------------------------------------------------------------------


def test_image_reads_cpio_and_resolves_links_inside_it():
    entries = [
        regular("lib/x86_64-linux-gnu/libc.so.6", b"\x7fELFlibc", executable=True),
        symlink("lib64", "lib/x86_64-linux-gnu"),
        symlink("usr/lib/libc.so.6", "/lib64/libc.so.6"),
    ]
    img = image.Image(image.read_cpio(gzip_deterministic(cpio_newc(entries))))
    assert img.resolve("/usr/lib/libc.so.6") == "/lib/x86_64-linux-gnu/libc.so.6"
    assert img.find_library("libc.so.6", [], "/usr/bin") == "/lib/x86_64-linux-gnu/libc.so.6"
    assert img.find_library("libnone.so", [], "/usr/bin") is None


# --- the syscall table and System.map ---------------------------------------------------------

TBL = """
0\tcommon\tread\t\t\tsys_read
4\tcommon\tstat\t\t\tsys_newstat
13\t64\trt_sigaction\t\tsys_rt_sigaction
181\tcommon\tgetpmsg
512\tx32\trt_sigaction\t\tcompat_sys_rt_sigaction
"""

SYSTEM_MAP = """ffffffff81000000 T _stext
ffffffff81001000 T __x64_sys_read
ffffffff81001040 t do_read
ffffffff81001080 W __x64_sys_newstat
ffffffff81001090 T __x64_sys_rt_sigaction
ffffffff810010f0 T _etext
"""


def test_tbl_and_system_map():
    calls = table.parse_tbl(TBL)
    assert [(s.number, s.name, s.entry) for s in calls] == [
        (0, "read", "read"),
        (4, "stat", "newstat"),
        (13, "rt_sigaction", "rt_sigaction"),
    ]
    symbols = table.parse_system_map(SYSTEM_MAP)
    assert table.kernel_entries(symbols) == {
        "read": "implemented",
        "newstat": "stub",
        "rt_sigaction": "implemented",
    }
    executed = [0xFFFFFFFF81001010, 0xFFFFFFFF81001050, 0xFFFFFFFF81001084]
    assert table.executed_entries(symbols, executed) == {"read", "newstat"}


# --- syscall -> Kconfig -----------------------------------------------------------------------


def test_formula_json_round_trip():
    f = conj(Sym("EPOLL"), disj(Not(Sym("A", "y")), Unknown("x > 1")))
    assert kconfig_table.decode(kconfig_table.encode(f)) == f
    assert kconfig_table.decode(True) == TRUE


def test_x86_macros_are_decided(tmp_path):
    unistd = tmp_path / "arch/x86/include/asm/unistd.h"
    unistd.parent.mkdir(parents=True)
    unistd.write_text(
        "#ifndef _ASM_X86_UNISTD_H\n#define _ASM_X86_UNISTD_H\n"
        "# ifdef CONFIG_X86_32\n#  define __ARCH_WANT_SYS_IPC\n# else\n"
        "#  define __ARCH_WANT_SYS_TIME\n# endif\n# define __ARCH_WANT_SYS_ALARM\n#endif\n"
    )
    wants = kconfig_table.arch_wants(str(tmp_path))
    assert wants == {
        "__ARCH_WANT_SYS_IPC": False,
        "__ARCH_WANT_SYS_TIME": True,
        "__ARCH_WANT_SYS_ALARM": True,
    }
    f = conj(Sym("POSIX_TIMERS", "y"), Unknown("defined(__ARCH_WANT_SYS_ALARM)"))
    assert kconfig_table.resolve_macros(f, wants) == Sym("POSIX_TIMERS", "y")
    assert kconfig_table.resolve_macros(Unknown("defined(__alpha__)"), wants) == FALSE


def test_check_kernel_lists_both_directions():
    doc = {
        "syscalls": {
            name: {
                "number": n,
                "entry": "sys_" + name,
                "condition": str(f),
                "formula": kconfig_table.encode(f),
            }
            for n, (name, f) in enumerate(
                [
                    ("read", TRUE),
                    ("eventfd2", Sym("EVENTFD")),
                    ("epoll_create1", Sym("EPOLL")),
                    ("odd", Unknown("x")),
                ]
            )
        }
    }
    config = {"EVENTFD": "y", "EPOLL": "n"}
    entries = {"read": "implemented", "eventfd2": "stub", "epoll_create1": "implemented"}
    check = kconfig_table.check_kernel(doc, config, entries)
    assert check["agree"] == 1
    assert check["undecided"] == ["odd"]
    assert [r["name"] for r in check["missing_in_kernel"]] == ["eventfd2"]
    assert [r["name"] for r in check["unexpected_in_kernel"]] == ["epoll_create1"]
