"""A Volatility 3 symbol table (ISF, the JSON "intermediate symbol format") from a kernel's
`layout.json` and `System.map`, for kernels built without debug info.

Volatility 3 reads Linux memory with an ISF that `dwarf2json` makes from a vmlinux with DWARF; a
tailored kernel has none. This module writes the same format from what kernel_rules knows without
DWARF: every System.map symbol's address, `linux_banner`'s text (Volatility matches it against
the memory image to pick the table), and the structures of `layout.json` with their sizes and the
offsets of their listed members. Members are typed from a table of the default layout's members
(`task_struct.tasks` is a `struct list_head`, `task_struct.mm` a pointer to `struct mm_struct`,
...); a member the BUILD file added is an array of bytes of its size. Types Volatility's Linux
support requires but the layout does not describe are declared empty, so only what the layout
knows can be read: enough for `linux.pslist`.

Contract: `isf_document(layout, system_map)` returns the ISF as a dict (format 6.2.0), the same
bytes for the same inputs (no timestamps). Run as
`python3 -m kernel_rules.domain.introspect.isf LAYOUT SYSTEM_MAP OUT.json`.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Dict, Mapping

FILE_NAME = "volatility3-isf.json"  # beside layout.json in every built kernel's package
ISF_FORMAT = "6.2.0"
PRODUCER = {"name": "kernel_rules", "version": "1.0.0"}

_BASE_TYPES: Dict[str, dict] = {
    "char": {"size": 1, "signed": True, "kind": "char", "endian": "little"},
    "unsigned char": {"size": 1, "signed": False, "kind": "char", "endian": "little"},
    "short int": {"size": 2, "signed": True, "kind": "int", "endian": "little"},
    "short unsigned int": {"size": 2, "signed": False, "kind": "int", "endian": "little"},
    "int": {"size": 4, "signed": True, "kind": "int", "endian": "little"},
    "unsigned int": {"size": 4, "signed": False, "kind": "int", "endian": "little"},
    "long int": {"size": 8, "signed": True, "kind": "int", "endian": "little"},
    "long unsigned int": {"size": 8, "signed": False, "kind": "int", "endian": "little"},
    "long long int": {"size": 8, "signed": True, "kind": "int", "endian": "little"},
    "long long unsigned int": {"size": 8, "signed": False, "kind": "int", "endian": "little"},
    "_Bool": {"size": 1, "signed": False, "kind": "bool", "endian": "little"},
    "pointer": {"size": 8, "signed": False, "kind": "int", "endian": "little"},
    "void": {"size": 0, "signed": True, "kind": "void", "endian": "little"},
}


def _base(name: str) -> dict:
    return {"kind": "base", "name": name}


def _struct(name: str) -> dict:
    return {"kind": "struct", "name": name}


def _pointer(subtype: dict) -> dict:
    return {"kind": "pointer", "subtype": subtype}


def _array(count: int, subtype: dict) -> dict:
    return {"kind": "array", "count": count, "subtype": subtype}


_ULONG = _base("long unsigned int")
# The types of layout.DEFAULT_FIELDS' members (include/linux/sched.h, mm_types.h, cred.h, types.h)
MEMBER_TYPES: Dict[str, dict] = {
    "task_struct.__state": _base("unsigned int"),
    "task_struct.flags": _base("unsigned int"),
    "task_struct.tasks": _struct("list_head"),
    "task_struct.mm": _pointer(_struct("mm_struct")),
    "task_struct.active_mm": _pointer(_struct("mm_struct")),
    "task_struct.pid": _base("int"),
    "task_struct.tgid": _base("int"),
    "task_struct.real_parent": _pointer(_struct("task_struct")),
    "task_struct.parent": _pointer(_struct("task_struct")),
    "task_struct.children": _struct("list_head"),
    "task_struct.sibling": _struct("list_head"),
    "task_struct.group_leader": _pointer(_struct("task_struct")),
    "task_struct.start_time": _base("long long unsigned int"),
    "task_struct.real_cred": _pointer(_struct("cred")),
    "task_struct.cred": _pointer(_struct("cred")),
    "task_struct.comm": _array(16, _base("char")),
    "task_struct.files": _pointer(_struct("files_struct")),
    "task_struct.nsproxy": _pointer(_struct("nsproxy")),
    "mm_struct.pgd": _pointer(_ULONG),
    "mm_struct.start_code": _ULONG,
    "mm_struct.end_code": _ULONG,
    "mm_struct.start_brk": _ULONG,
    "mm_struct.brk": _ULONG,
    "mm_struct.start_stack": _ULONG,
    "mm_struct.arg_start": _ULONG,
    "mm_struct.arg_end": _ULONG,
    "cred.uid": _struct("kuid_t"),
    "cred.gid": _struct("kgid_t"),
    "cred.euid": _struct("kuid_t"),
    "cred.egid": _struct("kgid_t"),
    "list_head.next": _pointer(_struct("list_head")),
    "list_head.prev": _pointer(_struct("list_head")),
}
# Structures Volatility's Linux symbol table class attaches behaviour to (it refuses a table
# without them), declared empty when the layout does not describe them.
REQUIRED_TYPES = (
    "address_space",
    "dentry",
    "file",
    "files_struct",
    "fs_struct",
    "hlist_head",
    "idr",
    "inet_sock",
    "inode",
    "kobject",
    "net",
    "nsproxy",
    "page",
    "qstr",
    "sock",
    "socket",
    "super_block",
    "unix_sock",
    "vfsmount",
    "vm_area_struct",
)
_ID_TYPES = {"kuid_t": "val", "kgid_t": "val"}
# Symbols Volatility reads as objects (it needs their type)
SYMBOL_TYPES: Dict[str, dict] = {
    "init_task": _struct("task_struct"),
    "init_mm": _struct("mm_struct"),
}


def _system_map(text: str) -> Dict[str, int]:
    symbols: Dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] not in symbols:
            symbols[parts[2]] = int(parts[0], 16)
    return symbols


def isf_document(layout: Mapping, system_map: str) -> dict:
    """The ISF of the kernel `layout` (a parsed layout.json) and `system_map` describe."""
    user_types: Dict[str, dict] = {}
    for name, struct in sorted(layout["structs"].items()):
        fields = {}
        for member, where in sorted(struct["fields"].items()):
            if "." in member:
                continue  # a nested member (`a.b`): its offset is in the enclosing member's type
            kind = MEMBER_TYPES.get(f"{name}.{member}") or _array(
                where["size"], _base("unsigned char")
            )
            fields[member] = {"offset": where["offset"], "type": kind}
        user_types[name] = {"kind": "struct", "size": struct["size"], "fields": fields}
    for name, member in _ID_TYPES.items():
        user_types.setdefault(
            name,
            {
                "kind": "struct",
                "size": 4,
                "fields": {member: {"offset": 0, "type": _base("unsigned int")}},
            },
        )
    for name in REQUIRED_TYPES:
        user_types.setdefault(name, {"kind": "struct", "size": 0, "fields": {}})
    symbols = {
        name: {"address": address} for name, address in sorted(_system_map(system_map).items())
    }
    for name, kind in SYMBOL_TYPES.items():
        if name in symbols:
            symbols[name]["type"] = kind
    banner = layout["kernel"]["banner"]
    if "linux_banner" in symbols:
        # what Volatility looks for in memory: the string and its terminating NUL
        symbols["linux_banner"]["constant_data"] = base64.b64encode(
            banner.encode() + b"\0"
        ).decode()
    return {
        "metadata": {
            "format": ISF_FORMAT,
            "producer": PRODUCER,
            "linux": {"symbols": [{"kind": "system-map", "name": "System.map"}]},
        },
        "base_types": _BASE_TYPES,
        "user_types": user_types,
        "enums": {},
        "symbols": symbols,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="isf", description=__doc__.splitlines()[0])
    p.add_argument("layout", help="the kernel's layout.json")
    p.add_argument("system_map", help="the kernel's System.map")
    p.add_argument("out", help="where to write the ISF (.json)")
    args = p.parse_args(argv)
    with open(args.layout) as f:
        layout = json.load(f)
    with open(args.system_map) as f:
        system_map = f.read()
    with open(args.out, "w") as f:
        json.dump(isf_document(layout, system_map), f, indent=1, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
