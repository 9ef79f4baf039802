"""List a guest's processes from a raw physical memory dump and its kernel's `layout.json`.

No debug info and no guest cooperation: the dump is what QEMU's monitor writes with
`pmemsave 0 <RAM size> FILE` (physical address 0 at file offset 0), and the manifest is the one
kernel_rules wrote for exactly this build (`domain.introspect.layout`).

How the kernel is found, and why a wrong manifest cannot give a silently wrong list:
1. `linux_banner` (text from the manifest) is searched for in the dump. Each hit gives a
   candidate `phys_base` (where the image was loaded, a multiple of 2 MiB).
2. At that `phys_base`, the GNU build id's bytes must sit at the manifest's `build_id_address`.
   Kernels of the same source built the same way share a banner; the build id tells them apart.
3. Only then is `init_task.tasks` walked, with the manifest's offsets of `task_struct`.

Addresses: the kernel image is mapped at `kernel_map_base + physical - phys_base`; RAM (where
every other `task_struct` lives) at the direct map, `direct_map_base` or, with
CONFIG_RANDOMIZE_MEMORY, the value of `page_offset_base` read from the dump.

Run as `python3 -m kernel_rules.domain.introspect.ps --layout layout.json DUMP [--json]`. Exit
codes: 0 the list was printed; 3 the dump is not of the manifest's kernel (the reason on stderr);
2 bad arguments or unreadable files.
"""

from __future__ import annotations

import argparse
import json
import mmap
import sys
from dataclasses import dataclass
from typing import Iterator, List, Mapping, Optional, Sequence

PHYSICAL_ALIGN = 0x200000
MAX_TASKS = 1 << 20
_BANNER_PREFIX = b"Linux version "


class WrongKernel(Exception):
    """The dump is not of the kernel the manifest describes."""


class DumpError(Exception):
    """An address the walk needs is outside the dump or outside the mapped ranges."""


@dataclass(frozen=True)
class Process:
    pid: int
    tgid: int
    comm: str
    kernel_thread: bool  # no mm: a kernel thread


def _hex(value: object) -> int:
    return int(str(value), 16)


class KernelMemory:
    """Read a kernel's virtual addresses from a physical dump, once its identity is verified."""

    def __init__(self, dump: bytes, manifest: Mapping) -> None:
        self.dump = dump
        self.manifest = manifest
        self.symbols = {k: _hex(v) for k, v in manifest["symbols"].items()}
        self.kernel_map_base = _hex(manifest["memory"]["kernel_map_base"])
        self.phys_base = self._locate()
        base = manifest["memory"].get("direct_map_base")
        if base is not None:
            self.direct_map_base = _hex(base)
        else:
            symbol = manifest["memory"]["direct_map_base_symbol"]
            self.direct_map_base = self.u64(self.symbols[symbol])

    def _locate(self) -> int:
        kernel = self.manifest["kernel"]
        banner = (kernel.get("banner") or "").encode()
        if not banner or "linux_banner" not in self.symbols:
            raise WrongKernel("the manifest names no linux_banner: it cannot identify a dump")
        offset = self.symbols["linux_banner"] - self.kernel_map_base
        build_id = bytes.fromhex(kernel["build_id"])
        build_id_at = _hex(self.manifest["build_id_address"]) - self.kernel_map_base
        seen: List[str] = []
        for hit in _find_all(self.dump, banner):
            phys_base = hit - offset
            if phys_base < 0 or phys_base % PHYSICAL_ALIGN:
                continue
            found = self.dump[phys_base + build_id_at : phys_base + build_id_at + len(build_id)]
            if found == build_id:
                return phys_base
            seen.append(found.hex())
        if seen:
            raise WrongKernel(
                f"the dump's kernel has the manifest's banner but build id {seen[0]}, not "
                f"{kernel['build_id']}: it is another build of {kernel['release']} (another "
                "configuration); use that kernel's layout.json"
            )
        if any(True for _ in _find_all(self.dump, banner.rstrip(b"\n"))):
            raise WrongKernel(
                "the dump's kernel has the manifest's banner text, but not at linux_banner's "
                f"place in the image ({self.manifest['symbols']['linux_banner']}): it is another "
                f"build of {kernel['release']} with another layout (another configuration); use "
                "that kernel's layout.json"
            )
        other = _banner_in(self.dump)
        raise WrongKernel(
            "the manifest's linux_banner is nowhere in the dump: it is of another kernel"
            + (f" ({other!r})" if other else "")
            + f"; the manifest is of {kernel['release']}, build id {kernel['build_id']}"
        )

    def physical(self, virt: int) -> int:
        if virt >= self.kernel_map_base:
            phys = virt - self.kernel_map_base + self.phys_base
        elif virt >= self.direct_map_base:
            phys = virt - self.direct_map_base
        else:
            raise DumpError(f"0x{virt:x} is neither in the kernel image nor in the direct map")
        if phys >= len(self.dump):
            raise DumpError(f"0x{virt:x} (physical 0x{phys:x}) is beyond the dump")
        return phys

    def read(self, virt: int, size: int) -> bytes:
        phys = self.physical(virt)
        return bytes(self.dump[phys : phys + size])

    def u64(self, virt: int) -> int:
        return int.from_bytes(self.read(virt, 8), "little")

    def uint(self, virt: int, size: int) -> int:
        return int.from_bytes(self.read(virt, size), "little")


def _find_all(data: bytes, needle: bytes) -> Iterator[int]:
    at = data.find(needle)
    while at >= 0:
        yield at
        at = data.find(needle, at + 1)


def _banner_in(data: bytes) -> Optional[str]:
    at = data.find(_BANNER_PREFIX)
    if at < 0:
        return None
    end = data.find(b"\n", at, at + 300)
    return bytes(data[at : end if end > 0 else at + 120]).decode(errors="replace")


def processes(memory: KernelMemory) -> List[Process]:
    """Every task on `init_task.tasks` (thread-group leaders, as /proc lists them), without
    `init_task` itself (pid 0, the idle task)."""
    task = memory.manifest["structs"]["task_struct"]["fields"]
    off = {name: task[name]["offset"] for name in ("tasks", "pid", "tgid", "comm", "mm")}
    size = {name: task[name]["size"] for name in ("pid", "tgid", "comm")}
    head = memory.symbols["init_task"] + off["tasks"]
    out: List[Process] = []
    node = memory.u64(head)
    while node != head:
        if len(out) >= MAX_TASKS:
            raise DumpError(f"init_task.tasks has more than {MAX_TASKS} entries: not a list")
        base = node - off["tasks"]
        comm = memory.read(base + off["comm"], size["comm"]).split(b"\0", 1)[0]
        out.append(
            Process(
                pid=memory.uint(base + off["pid"], size["pid"]),
                tgid=memory.uint(base + off["tgid"], size["tgid"]),
                comm=comm.decode(errors="replace"),
                kernel_thread=memory.u64(base + off["mm"]) == 0,
            )
        )
        node = memory.u64(node)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="ps", description=__doc__.splitlines()[0])
    p.add_argument("--layout", required=True, help="the kernel's layout.json")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("dump", help="raw physical memory from address 0 (QEMU's pmemsave)")
    args = p.parse_args(argv)
    try:
        with open(args.layout) as f:
            manifest = json.load(f)
        with open(args.dump, "rb") as f:
            dump = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as e:
        print(f"ps: {e}", file=sys.stderr)
        return 2
    try:
        found = processes(KernelMemory(dump, manifest))
    except WrongKernel as e:
        print(f"ps: {args.dump}: {e}", file=sys.stderr)
        return 3
    except (DumpError, KeyError) as e:
        print(f"ps: {args.dump}: cannot walk the task list: {e}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps([p.__dict__ for p in found], indent=1))
    else:
        print(f"{'PID':>6} {'TGID':>6}  COMM")
        for proc in found:
            comm = f"[{proc.comm}]" if proc.kernel_thread else proc.comm
            print(f"{proc.pid:>6} {proc.tgid:>6}  {comm}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
