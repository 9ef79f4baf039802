"""The syscall surface of one app profile: what its binaries can call, what its trace executed.

Static: every executable ELF file of the app's guest image that no other file loads as a library
(the app's compiled `programs`, its host `binaries`, busybox, the marker programs) is analysed
with its libraries and loader from the same image (domain.syscalls.reach). Traced: the
`__x64_sys_*` functions of the trace kernel's System.map that hold an address executed in the
app's window (domain.syscalls.table). Both are named by the source's syscall table
(`syscall-kconfig.json`, domain.syscalls.kconfig_table), which also gives the options each one
needs, and is checked against the trace kernel's `.config` and System.map.

Run as `python3 -m kernel_rules.domain.syscalls.analyse --initramfs F --kconfig F --system-map F
--config F --addresses F --objdump PATH --target ADDR [--app-path P ...] --out DIR`.
Writes `syscalls.json` (format `kernel_rules/syscalls@1`) and `syscalls.md`. A file that cannot be
analysed (not ELF, another architecture, unreadable) is listed under `unreadable` with the reason;
the others are still analysed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import posixpath
import sys
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from kernel_rules.domain.kconfig.fragments import parse_config
from kernel_rules.domain.syscalls import binaries, image as img, reach, table
from kernel_rules.domain.syscalls.kconfig_table import check_kernel

FORMAT = "kernel_rules/syscalls@1"
SAMPLES = 3  # sites kept per syscall and binary
UNKNOWN_SAMPLES = 20


class Loader:
    """ELF files of an image, each loaded (and disassembled) once."""

    def __init__(self, image: img.Image, objdump: str, workdir: str) -> None:
        self.image, self.objdump, self.workdir = image, objdump, workdir
        self.cache: Dict[str, object] = {}
        self.unreadable: Dict[str, str] = {}

    def load(self, path: str) -> Optional[binaries.ElfObject]:
        if path not in self.cache:
            data_path = os.path.join(self.workdir, f"{len(self.cache)}.elf")
            with open(data_path, "wb") as f:
                f.write(self.image.data(path))
            try:
                self.cache[path] = binaries.load(path, data_path, self.objdump)
            except binaries.Unreadable as e:
                self.cache[path] = None
                self.unreadable[path] = str(e)
            os.unlink(data_path)
        return self.cache[path]  # type: ignore[return-value]

    def needed(self, obj: binaries.ElfObject, name: str) -> Optional[binaries.ElfObject]:
        if name == obj.interp:
            path = self.image.resolve(name)
        else:
            path = self.image.find_library(name, obj.runpath, posixpath.dirname(obj.path))
        return self.load(path) if path else None


def programs_of(image: img.Image, app_paths: Iterable[str]) -> List[str]:
    """Executable ELF files no other file of the image names as DT_NEEDED or interpreter, and
    the app's own paths (even when they are not ELF files: they are reported unreadable)."""
    execs = set(image.executables())
    needed = set()
    for path in execs:
        data = image.data(path)
        for name in _needed_names(data):
            needed.add(posixpath.basename(name))
    roots = {p for p in execs if posixpath.basename(p) not in needed}
    for p in app_paths:
        resolved = image.resolve(p)
        roots.add(resolved or p)
    return sorted(roots)


def _needed_names(data: bytes) -> List[str]:
    """DT_NEEDED names and the interpreter (none for a file pyelftools cannot read)."""
    try:
        elf = ELFFile(io.BytesIO(data))
        out = []
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                out.append(seg.get_interp_name())
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                out += [t.needed for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        return out
    except (ELFError, ValueError, KeyError):
        return []


def analyse(
    image: img.Image,
    kconfig: dict,
    system_map: str,
    config: Dict[str, str],
    addresses: Iterable[int],
    objdump: str,
    target: str,
    app_paths: Sequence[str] = (),
) -> dict:
    rows = kconfig["syscalls"]
    by_number = {r["number"]: name for name, r in rows.items()}
    by_entry = {r["entry"][len("sys_") :]: name for name, r in rows.items()}
    app = {image.resolve(p) or p for p in app_paths}
    per_binary: Dict[str, dict] = {}
    static: Dict[str, List[dict]] = {}
    static_app: set = set()
    unreadable: List[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        loader = Loader(image, objdump, tmp)
        for path in programs_of(image, app_paths):
            if path not in image.files:
                unreadable.append(f"{path}: not in the guest image")
                continue
            obj = loader.load(path)
            if obj is None:
                unreadable.append(loader.unreadable[path])
                continue
            result = reach.reachable_syscalls(obj, loader.needed)
            found: Dict[str, List[dict]] = {}
            unknown: List[dict] = []
            for s in result.sites:
                where = {
                    "binary": s.binary,
                    "function": s.function,
                    "address": f"0x{s.address:x}",
                    "via": s.via,
                }
                if s.number is None:
                    unknown.append(where)
                    continue
                name = by_number.get(s.number, f"#{s.number}")
                found.setdefault(name, []).append(where)
            kind = "app" if path in app else "image"
            for name, where in found.items():
                static.setdefault(name, []).extend(
                    [{"program": path, **w} for w in where[:SAMPLES]]
                )
                if kind == "app":
                    static_app.add(name)
            per_binary[path] = {
                "kind": kind,
                "objects": result.objects,
                "functions_reached": result.functions_reached,
                "indirect_calls_not_followed": result.indirect_calls,
                "unresolved_imports": result.unresolved_imports,
                "notes": sorted(set(result.notes)),
                "syscalls": {n: w[:SAMPLES] for n, w in sorted(found.items())},
                "unknown_numbers": len(unknown),
                "unknown_samples": [
                    f"unknown number at {u['address']} in {u['binary']} ({u['function']})"
                    for u in unknown[:UNKNOWN_SAMPLES]
                ],
            }
        for path, why in sorted(loader.unreadable.items()):
            if why not in unreadable:
                unreadable.append(why)
    symbols = table.parse_system_map(system_map)
    entries = table.kernel_entries(symbols)
    executed = table.executed_entries(symbols, addresses)
    traced = {by_entry.get(e, f"sys_{e}") for e in executed}
    stubs = sorted(by_entry.get(e, e) for e in executed if entries.get(e) == "stub")
    per_syscall = {}
    for name in sorted(set(static) | traced, key=lambda n: rows.get(n, {}).get("number", 1 << 20)):
        row = rows.get(name, {})
        per_syscall[name] = {
            "number": row.get("number"),
            "static": name in static,
            "static_in_app": name in static_app,
            "traced": name in traced,
            "requires": row.get("requires", {}),
            "condition": row.get("condition"),
            "found_in": sorted(static.get(name, []), key=lambda w: w["program"] not in app)[
                :SAMPLES
            ],
        }
    return {
        "format": FORMAT,
        "target": target,
        "binaries": per_binary,
        "unreadable": unreadable,
        "static": sorted(static),
        "static_in_app": sorted(static_app),
        "traced": sorted(traced),
        "traced_stubs": stubs,
        "static_not_traced": sorted(set(static) - traced),
        "traced_not_static": sorted(traced - set(static)),
        "syscalls": per_syscall,
        "kconfig_check": check_kernel(kconfig, config, entries),
    }


def markdown(doc: dict) -> str:
    lines = [
        f"# Syscalls of {doc['target']}",
        "",
        f"{len(doc['static'])} syscalls reachable in the image's programs "
        f"({len(doc['static_in_app'])} in the app's own), {len(doc['traced'])} executed in "
        f"the traced window; {len(doc['static_not_traced'])} found statically only, "
        f"{len(doc['traced_not_static'])} traced only.",
        "",
        "| nr | syscall | static (app) | static (any program) | traced | needs | found in |",
        "|---:|---|:-:|:-:|:-:|---|---|",
    ]
    for name, row in doc["syscalls"].items():
        needs = ", ".join(f"{s}={v}" if v != "ym" else s for s, v in row["requires"].items())
        where = row["found_in"][0] if row["found_in"] else None
        at = f"{where['binary']}:{where['function']}@{where['address']}" if where else ""
        lines.append(
            f"| {row['number'] if row['number'] is not None else '?'} | {name} | "
            f"{'x' if row['static_in_app'] else ''} | {'x' if row['static'] else ''} | "
            f"{'x' if row['traced'] else ''} | {needs} | {at} |"
        )
    lines += ["", "## Binaries", ""]
    for path, b in doc["binaries"].items():
        lines.append(
            f"- `{path}` ({b['kind']}): {len(b['syscalls'])} syscalls, "
            f"{b['unknown_numbers']} sites with an unknown number, "
            f"{b['indirect_calls_not_followed']} indirect calls not followed, "
            f"{b['functions_reached']} functions reached in {len(b['objects'])} files"
        )
    if doc["unreadable"]:
        lines += ["", "## Not analysed", ""] + [f"- {u}" for u in doc["unreadable"]]
    check = doc["kconfig_check"]
    lines += [
        "",
        "## Syscall -> Kconfig table against the trace kernel",
        "",
        f"{check['agree']} agree, {len(check['undecided'])} undecided, "
        f"{len(check['missing_in_kernel'])} enabled by the table but missing, "
        f"{len(check['unexpected_in_kernel'])} disabled by the table but present.",
    ]
    for row in check["missing_in_kernel"] + check["unexpected_in_kernel"]:
        lines.append(f"- {row['name']} ({row['number']}): {row['condition']}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="analyse", description=__doc__.splitlines()[0])
    p.add_argument("--initramfs", required=True)
    p.add_argument("--kconfig", required=True, help="syscall-kconfig.json of the source")
    p.add_argument("--system-map", required=True)
    p.add_argument("--config", required=True, help="the trace kernel's .config")
    p.add_argument("--addresses", required=True, help="the tracer's addresses.txt")
    p.add_argument("--objdump", default="objdump")
    p.add_argument("--target", required=True)
    p.add_argument("--app-path", action="append", default=[], help="an app program's guest path")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        with open(args.initramfs, "rb") as f:
            image = img.Image(img.read_cpio(f.read()))
    except (OSError, img.BadImage, EOFError) as e:
        print(json.dumps({"error": f"{args.initramfs}: {e}"}))
        return 3
    with open(args.kconfig) as f:
        kconfig = json.load(f)
    with open(args.system_map) as f:
        system_map = f.read()
    with open(args.config) as f:
        config = parse_config(f.read())
    with open(args.addresses) as f:
        addresses = [int(line.split()[0], 16) for line in f if line.strip()]
    doc = analyse(
        image, kconfig, system_map, config, addresses, args.objdump, args.target, args.app_path
    )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "syscalls.json"), "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(args.out, "syscalls.md"), "w") as f:
        f.write(markdown(doc))
    for u in doc["unreadable"]:
        print(f"kernel_rules: syscalls: {u}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
