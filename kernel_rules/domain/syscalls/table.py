"""x86-64 syscall numbers and names, and which syscalls a kernel has and a trace executed.

- `parse_tbl(text)`: `arch/x86/entry/syscalls/syscall_64.tbl` -> the native (`common` and `64`
  ABI) syscalls: number, name, entry point (`sys_newstat` for `stat`). x32 entries are skipped.
- `parse_system_map(text)`: System.map -> symbols (address, type, name), in address order.
- `kernel_entries(symbols)`: entry name (`newstat`) -> "implemented" when `__x64_sys_<entry>` is a
  text symbol (`T`/`t`), "stub" when it is only the weak `COND_SYSCALL` stub (`W`/`w`, it returns
  -ENOSYS).
- `executed_entries(symbols, addresses)`: the entries whose `__x64_sys_*` function holds at least
  one of the executed addresses (a function spans from its address to the next symbol's).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Dict, Iterable, List, Set, Tuple

X64_PREFIX = "__x64_sys_"
TBL_PATH = "arch/x86/entry/syscalls/syscall_64.tbl"


@dataclass(frozen=True)
class Syscall:
    number: int
    name: str
    entry: str  # without `sys_`: the `__x64_sys_<entry>` function

    def to_json(self) -> dict:
        return {"number": self.number, "name": self.name, "entry": "sys_" + self.entry}


def parse_tbl(text: str) -> List[Syscall]:
    out: List[Syscall] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 4 or fields[1] not in ("common", "64"):
            continue
        entry = fields[3]
        if not entry.startswith("sys_"):
            continue
        out.append(Syscall(int(fields[0]), fields[2], entry[len("sys_") :]))
    return sorted(out, key=lambda s: s.number)


def parse_system_map(text: str) -> List[Tuple[int, str, str]]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            try:
                out.append((int(parts[0], 16), parts[1], parts[2]))
            except ValueError:
                continue
    return sorted(out)


def kernel_entries(symbols: Iterable[Tuple[int, str, str]]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for _addr, kind, name in symbols:
        if not name.startswith(X64_PREFIX):
            continue
        entry = name[len(X64_PREFIX) :]
        if kind in "Tt":
            out[entry] = "implemented"
        elif kind in "Ww":
            out.setdefault(entry, "stub")
    return out


def executed_entries(symbols: List[Tuple[int, str, str]], addresses: Iterable[int]) -> Set[str]:
    starts = sorted({a for a, _k, _n in symbols})
    spans: List[Tuple[int, int, str]] = []
    for addr, kind, name in symbols:
        if name.startswith(X64_PREFIX) and kind in "TtWw":
            k = bisect_left(starts, addr + 1)
            end = starts[k] if k < len(starts) else addr + 1
            spans.append((addr, end, name[len(X64_PREFIX) :]))
    spans.sort()
    lows = [s[0] for s in spans]
    hit: Set[str] = set()
    for a in addresses:
        k = bisect_left(lows, a + 1) - 1
        if k >= 0 and spans[k][0] <= a < spans[k][1]:
            hit.add(spans[k][2])
    return hit
