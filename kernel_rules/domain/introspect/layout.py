"""The layout manifest of a built kernel (`layout.json`): identity, key symbols, structure layouts.

Tools that read a machine's memory without debug info (from a crash dump, over RDMA, from a
hypervisor) need, for exactly this kernel: how to recognise it (release, `linux_banner`, the GNU
build id and where it sits in memory, the configuration's sha256), where its key symbols are, and
the size and field offsets of the structures they walk. A tailored kernel moves `task_struct`
fields, so these come from the configured build tree itself: an offsets probe is compiled there by
Kbuild (as an external-module single target, `make M=<dir> layout_probe.s`, with every flag of the
real build), the way Kbuild makes `asm-offsets.h`. It needs no debug info.

Contract:
- `field_spec_problem` / `header_problem` validate BUILD-file entries (`struct.member[.member]`,
  `linux/foo.h`) before anything is generated: the probe's C source is made only of them.
- `probe_layout` returns `{struct: {"size": n, "fields": {member: {"offset", "size"}}}}` and the
  entries the kernel's headers do not define (a member under a `#ifdef` this configuration turns
  off), each with the compiler's reason; a missing member never fails the build.
- `write_manifest` assembles and writes the whole document (format `MANIFEST_FORMAT`); the same
  build gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from struct import unpack_from
import subprocess
import tempfile
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

MANIFEST_FORMAT = "kernel_rules-layout@1"

# What a process lister, a credential check and a memory-map walk need (6.1 names: the state
# field is `__state`).
DEFAULT_FIELDS: Tuple[str, ...] = (
    "task_struct.__state",
    "task_struct.flags",
    "task_struct.tasks",
    "task_struct.mm",
    "task_struct.active_mm",
    "task_struct.pid",
    "task_struct.tgid",
    "task_struct.real_parent",
    "task_struct.parent",
    "task_struct.children",
    "task_struct.sibling",
    "task_struct.group_leader",
    "task_struct.start_time",
    "task_struct.real_cred",
    "task_struct.cred",
    "task_struct.comm",
    "task_struct.files",
    "task_struct.nsproxy",
    "mm_struct.pgd",
    "mm_struct.start_code",
    "mm_struct.end_code",
    "mm_struct.start_brk",
    "mm_struct.brk",
    "mm_struct.start_stack",
    "mm_struct.arg_start",
    "mm_struct.arg_end",
    "cred.uid",
    "cred.gid",
    "cred.euid",
    "cred.egid",
    "list_head.next",
    "list_head.prev",
)
DEFAULT_HEADERS: Tuple[str, ...] = (
    "linux/sched.h",
    "linux/mm_types.h",
    "linux/cred.h",
    "linux/list.h",
)
# Addresses a memory reader starts from; those the configuration does not have are left out.
KEY_SYMBOLS: Tuple[str, ...] = (
    "_text",
    "_etext",
    "init_task",
    "init_mm",
    "linux_banner",
    "phys_base",
    "page_offset_base",
    "init_top_pgt",
    "jiffies_64",
    "kernel_config_data",
)
# x86_64 with 4-level paging: the kernel image is mapped at KERNEL_MAP_BASE + physical address -
# phys_base; RAM is mapped at DIRECT_MAP_BASE (randomised, and then read from `page_offset_base`,
# only with CONFIG_RANDOMIZE_MEMORY).
KERNEL_MAP_BASE = 0xFFFFFFFF80000000
DIRECT_MAP_BASE = 0xFFFF888000000000

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_FIELD_SPEC = re.compile(rf"({_IDENT})\.({_IDENT}(?:\.{_IDENT})*)")
_HEADER = re.compile(r"[A-Za-z0-9_]+(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\.h")
_PROBE_LINE = re.compile(r'"->kr_(\d+)_(size|offset|fsize) \$?(-?\d+)')
_PROBE_SOURCE = "layout_probe.c"


class LayoutError(Exception):
    """The probe could not be compiled for a reason other than members this kernel lacks."""


def field_spec_problem(spec: str) -> str:
    """Why `spec` is not a `struct.member` entry (members may be nested: `task_struct.se.vruntime`);
    empty when it is one."""
    if not isinstance(spec, str) or not _FIELD_SPEC.fullmatch(spec):
        return (
            f"{spec!r} is not `struct.member`: a C structure tag and a member path, made of "
            "identifiers joined by dots (e.g. `task_struct.pid` or `task_struct.se.vruntime`)"
        )
    return ""


def header_problem(header: str) -> str:
    """Why `header` is not an include path such as `linux/fs.h`; empty when it is one."""
    if not isinstance(header, str) or not _HEADER.fullmatch(header) or ".." in header:
        return (
            f"{header!r} is not a kernel header path: expected a relative path ending in `.h`, "
            "as written in `#include <...>` (e.g. `linux/fs.h`)"
        )
    return ""


def missing_header(src: str, arch: str, header: str) -> bool:
    """True when no include directory of the source tree has `header` (generated headers,
    `include/generated/...`, are in the build tree and are not checked here)."""
    if header.startswith("generated/"):
        return False
    roots = ("include", f"arch/{'x86' if arch == 'x86_64' else arch}/include", "include/uapi")
    return not any(os.path.exists(os.path.join(src, r, header)) for r in roots)


def _entries(fields: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """(struct, member or None for the struct's size), each struct's size first, no repeats."""
    out: List[Tuple[str, Optional[str]]] = []
    for spec in fields:
        struct, member = spec.split(".", 1)
        for entry in ((struct, None), (struct, member)):
            if entry not in out:
                out.append(entry)
    return out


def probe_source(entries: Sequence[Tuple[str, Optional[str]]], headers: Sequence[str]) -> str:
    """The C source of the offsets probe: one `DEFINE` per line, named by entry index, so that a
    compiler error's line number names the entry that failed."""
    lines = ["#include <linux/kbuild.h>"] + [f"#include <{h}>" for h in headers]
    lines += ["void kernel_rules_layout(void);", "void kernel_rules_layout(void)", "{"]
    for i, (struct, member) in enumerate(entries):
        if member is None:
            lines.append(f"\tDEFINE(kr_{i}_size, sizeof(struct {struct}));")
        else:
            lines.append(
                f"\tDEFINE(kr_{i}_offset, offsetof(struct {struct}, {member})); "
                f"DEFINE(kr_{i}_fsize, sizeof(((struct {struct} *)0)->{member}));"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _first_entry_line(headers: Sequence[str]) -> int:
    """The line of `probe_source`'s first entry: after kbuild.h, the headers, the prototype, the
    definition and its brace."""
    return 1 + len(headers) + 4


def parse_probe(assembly: str) -> Dict[int, Dict[str, int]]:
    """{entry index: {"size"|"offset"|"fsize": value}} from the probe's assembly."""
    out: Dict[int, Dict[str, int]] = {}
    for m in _PROBE_LINE.finditer(assembly):
        out.setdefault(int(m.group(1)), {})[m.group(2)] = int(m.group(3))
    return out


def failed_entries(stderr: str, first_line: int, count: int) -> Dict[int, str]:
    """{entry index: the compiler's error} for each probe line the compiler's output blames."""
    failed: Dict[int, str] = {}
    error = ""
    for line in stderr.splitlines():
        m = re.search(r"error: (.*)", line)
        if m:
            error = m.group(1).strip()
        m = re.search(rf"{re.escape(_PROBE_SOURCE)}:(\d+):\d+:", line)
        if m:
            index = int(m.group(1)) - first_line
            if 0 <= index < count and index not in failed:
                failed[index] = error
    return failed


def _compile(make: List[str], workdir: str, source: str) -> subprocess.CompletedProcess:
    for name in os.listdir(workdir):
        os.unlink(os.path.join(workdir, name))
    with open(os.path.join(workdir, "Kbuild"), "w") as f:
        f.write("obj-m := layout_probe.o\n")
    with open(os.path.join(workdir, _PROBE_SOURCE), "w") as f:
        f.write(source)
    return subprocess.run(
        make + [f"M={workdir}", "layout_probe.s"],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )


def probe_layout(
    make: List[str], fields: Sequence[str], headers: Sequence[str]
) -> Tuple[Dict[str, dict], Dict[str, str]]:
    """Compile the probe with `make` (the tree's make command line, without targets) and return
    (structs, absent): the layouts the kernel's headers define, and {entry: reason} for the
    others. Raises LayoutError when the compiler fails without blaming an entry (a header that
    does not compile, a broken tree)."""
    entries = _entries(fields)
    absent: Dict[int, str] = {}
    workdir = tempfile.mkdtemp(prefix="kr-layout-")
    try:
        while True:
            live = [i for i in range(len(entries)) if i not in absent]
            source = probe_source([entries[i] for i in live], headers)
            result = _compile(make, workdir, source)
            if result.returncode == 0:
                with open(os.path.join(workdir, "layout_probe.s")) as f:
                    values = parse_probe(f.read())
                break
            blamed = failed_entries(result.stderr, _first_entry_line(headers), len(live))
            if not blamed:
                tail = "\n".join((result.stderr or result.stdout).splitlines()[-30:])
                raise LayoutError(f"the layout probe does not compile:\n{tail}")
            for j, why in blamed.items():
                absent[live[j]] = why or "the compiler rejected it"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    structs: Dict[str, dict] = {}
    missing: Dict[str, str] = {}
    for j, i in enumerate(live):
        struct, member = entries[i]
        got = values.get(j, {})
        if member is None:
            structs.setdefault(struct, {"fields": {}})["size"] = got["size"]
        else:
            structs.setdefault(struct, {"fields": {}})["fields"][member] = {
                "offset": got["offset"],
                "size": got["fsize"],
            }
    for i, why in absent.items():
        struct, member = entries[i]
        missing[struct if member is None else f"{struct}.{member}"] = why
    for struct in list(structs):
        if "size" not in structs[struct]:
            structs.pop(struct)
    return structs, missing


_PAHOLE_MEMBER = re.compile(
    r"^\t+(?P<type>.*?)\s*(?:\(\*(?P<fn>\w+)\)\(.*\)|(?P<name>\w+)(?:\[\d+\])*)"
    r"(?:\s+__attribute__\(\(.*\)\))?;\s+/\*\s+(?P<offset>\d+)\s+(?P<size>\d+)\s+\*/\s*$"
)
_PAHOLE_SIZE = re.compile(r"/\* size: (\d+),")


def pahole_struct(pahole: str, vmlinux: str, struct: str) -> Optional[Tuple[int, Dict[str, tuple]]]:
    """(size, {member: (offset, size, type)}) of `struct` as pahole reads it from the DWARF or BTF
    of `vmlinux`, members of anonymous unions and structures included (pahole gives their offsets
    from the start of `struct`); None when `vmlinux` does not define it."""
    out = subprocess.run(
        [pahole, "-C", struct, vmlinux],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    size = _PAHOLE_SIZE.search(out.stdout)
    if out.returncode != 0 or size is None:
        return None
    members: Dict[str, tuple] = {}
    for line in out.stdout.splitlines():
        m = _PAHOLE_MEMBER.match(line)
        if m:
            name = m.group("fn") or m.group("name")
            members.setdefault(
                name, (int(m.group("offset")), int(m.group("size")), m.group("type"))
            )
    return int(size.group(1)), members


def pahole_layout(
    pahole: str, vmlinux: str, fields: Sequence[str]
) -> Tuple[Dict[str, dict], Dict[str, str]]:
    """What `probe_layout` returns, read by pahole from a kernel with debug info or BTF (a
    distribution's debug package) instead of compiled in a build tree. Nested members follow
    the member's structure type."""
    cache: Dict[str, Optional[Tuple[int, Dict[str, tuple]]]] = {}

    def lookup(struct: str):
        if struct not in cache:
            cache[struct] = pahole_struct(pahole, vmlinux, struct)
        return cache[struct]

    structs: Dict[str, dict] = {}
    absent: Dict[str, str] = {}
    for spec in fields:
        struct, path = spec.split(".", 1)
        top = lookup(struct)
        if top is None:
            absent[struct] = f"pahole finds no struct {struct} in vmlinux"
            continue
        structs.setdefault(struct, {"size": top[0], "fields": {}})
        offset, current, found = 0, top, None
        for part in path.split("."):
            found = current[1].get(part) if current else None
            if found is None:
                break
            offset += found[0]
            kind = re.sub(r"^(?:const\s+)?(?:struct|union)\s+", "", found[2]).strip()
            current = lookup(kind) if re.fullmatch(_IDENT, kind) else None
        if found is None:
            absent[spec] = f"pahole finds no member {path} in struct {struct}"
        else:
            structs[struct]["fields"][path] = {"offset": offset, "size": found[1]}
    return structs, absent


def symbol_addresses(system_map: str, names: Iterable[str] = KEY_SYMBOLS) -> Dict[str, str]:
    """{name: "0x..."} of `names` that System.map defines."""
    wanted = set(names)
    found: Dict[str, str] = {}
    for line in system_map.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in wanted and parts[2] not in found:
            found[parts[2]] = f"0x{int(parts[0], 16):x}"
    return found


_SHT_PROGBITS, _SHT_NOTE, _NT_GNU_BUILD_ID = 1, 7, 3


def _sections(f) -> List[Tuple[int, int, int, int]]:
    """(type, address, file offset, size) of every section of the ELF64 little-endian file `f`."""
    head = f.read(64)
    if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        raise LayoutError("vmlinux is not a 64-bit little-endian ELF file")
    (shoff,) = unpack_from("<Q", head, 0x28)
    shentsize, shnum = unpack_from("<HH", head, 0x3A)
    f.seek(shoff)
    table = f.read(shentsize * shnum)
    out = []
    for i in range(shnum):
        _name, kind, _flags, addr, offset, size = unpack_from("<IIQQQQ", table, i * shentsize)
        out.append((kind, addr, offset, size))
    return out


def image_identity(vmlinux: str, banner_address: Optional[int]) -> Dict[str, object]:
    """The build id (hex), the virtual address of its bytes, and the `linux_banner` text, read
    from the ELF file `vmlinux` (no debug info needed; the standard library only, as the Kbuild
    driver that runs this)."""
    identity: Dict[str, object] = {"build_id": None, "build_id_address": None, "banner": None}
    with open(vmlinux, "rb") as f:
        sections = _sections(f)
        for kind, addr, offset, size in sections:
            if kind != _SHT_NOTE:
                continue
            f.seek(offset)
            data, at = f.read(size), 0
            while at + 12 <= len(data):
                namesz, descsz, note_type = unpack_from("<III", data, at)
                desc = at + 12 + ((namesz + 3) & ~3)
                if note_type == _NT_GNU_BUILD_ID and data[at + 12 : at + 15] == b"GNU":
                    identity["build_id"] = data[desc : desc + descsz].hex()
                    identity["build_id_address"] = f"0x{addr + desc:x}"
                at = desc + ((descsz + 3) & ~3)
        if banner_address is not None:
            for kind, addr, offset, size in sections:
                if kind == _SHT_PROGBITS and addr <= banner_address < addr + size:
                    f.seek(offset + banner_address - addr)
                    data = f.read(min(1024, addr + size - banner_address))
                    identity["banner"] = data.split(b"\0", 1)[0].decode(errors="replace")
                    break
    return identity


def write_manifest(
    out: str,
    kernel_dir: str,
    *,
    arch: str,
    release: str,
    structs: Mapping[str, dict],
    absent: Mapping[str, str],
    config_name: str = ".config",
    source: str = "offsets probe compiled in the build tree",
) -> dict:
    """Write `out`, the layout manifest (see the module docstring) of the kernel whose `vmlinux`,
    `System.map` and configuration (`config_name`: `.config` in a build tree) are in
    `kernel_dir`, and return it; `source` says where the structure layouts come from."""
    with open(os.path.join(kernel_dir, config_name), "rb") as f:
        config = f.read()
    with open(os.path.join(kernel_dir, "System.map")) as f:
        symbols = symbol_addresses(f.read())
    banner = symbols.get("linux_banner")
    identity = image_identity(
        os.path.join(kernel_dir, "vmlinux"), int(banner, 16) if banner else None
    )
    doc = {
        "format": MANIFEST_FORMAT,
        "kernel": {
            "arch": arch,
            "release": release,
            "banner": identity["banner"],
            "build_id": identity["build_id"],
            "config_sha256": hashlib.sha256(config).hexdigest(),
        },
        "build_id_address": identity["build_id_address"],
        "memory": {
            "kernel_map_base": f"0x{KERNEL_MAP_BASE:x}",
            "direct_map_base": None if "page_offset_base" in symbols else f"0x{DIRECT_MAP_BASE:x}",
            "direct_map_base_symbol": "page_offset_base" if "page_offset_base" in symbols else None,
        },
        "symbols": symbols,
        "structs": {name: structs[name] for name in sorted(structs)},
        "absent": dict(sorted(absent.items())),
        "source": source,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    return doc
