"""Kernel addresses -> source lines, with inline chains, through binutils' `addr2line`.

`addr2line -a -f -i` resolves ~100k addresses per second on a vmlinux with DWARF: one process,
addresses on stdin, and for each address the chain of frames from the innermost inlined function
out to the function that holds the address in its compilation unit.

Paths come out as the compiler recorded them. Builds by kernel_rules map the source tree to
`/kernel/src/` and the output tree to `/kernel/obj/`; distribution kernels use their own prefixes
(e.g. Debian's `debian/build/build_amd64_none_cloud-amd64/`). `strip_prefixes` turns them into
paths relative to the kernel source tree; lines in generated files (under the output tree) and
unknown lines (`??:0`) are reported as unmapped.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

DEFAULT_PREFIXES = ("/kernel/src/",)
GENERATED_PREFIXES = ("/kernel/obj/",)
_LOC = re.compile(r"^(.*):(\d+|\?)(?: \(discriminator \d+\))?$")


@dataclass(frozen=True)
class Frame:
    function: str
    file: str  # relative to the kernel source tree
    line: int


@dataclass(frozen=True)
class Location:
    """Frames innermost first; the last frame is the function that owns the address."""

    address: int
    frames: Tuple[Frame, ...]

    @property
    def outermost(self) -> Optional[Frame]:
        return self.frames[-1] if self.frames else None


def _relative(path: str, prefixes: Sequence[str]) -> Optional[str]:
    for p in prefixes:
        if path.startswith(p):
            return path[len(p) :]
    return None


def parse_addr2line(
    lines: Iterable[str], prefixes: Sequence[str] = DEFAULT_PREFIXES
) -> Dict[int, Location]:
    """Parse `addr2line -a -f -i` output. Frames outside `prefixes` (generated files, `??`)
    are dropped; an address left with no frame is unmapped."""
    out: Dict[int, Location] = {}
    address: Optional[int] = None
    frames: List[Frame] = []
    function: Optional[str] = None

    def flush() -> None:
        if address is not None:
            out[address] = Location(address, tuple(frames))

    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith("0x") and function is None:
            flush()
            address, frames = int(line, 16), []
            continue
        if function is None:
            function = line
            continue
        m = _LOC.match(line)
        rel = _relative(m.group(1), prefixes) if m else None
        if rel is not None and m.group(2) != "?" and int(m.group(2)) > 0:
            frames.append(Frame(function, rel, int(m.group(2))))
        function = None
    flush()
    return out


def resolve(
    vmlinux: str,
    addresses: Iterable[int],
    addr2line: str = "addr2line",
    prefixes: Sequence[str] = DEFAULT_PREFIXES,
) -> Dict[int, Location]:
    """Resolve `addresses` against `vmlinux` with one `addr2line` process."""
    text = "".join(f"{a:#x}\n" for a in sorted(set(addresses)))
    proc = subprocess.run(
        [addr2line, "-a", "-f", "-i", "-e", vmlinux],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_addr2line(proc.stdout.splitlines(), prefixes)
