"""Traced addresses in loadable modules -> the module's debug file -> source lines.

A module's code lives wherever the kernel allocated it, so its addresses mean nothing without
the module list. The guest prints, for every loaded module, where each of its code sections
starts (`KR_MODSECT <module> <section> <address>`, from `/sys/module/<m>/sections/`; read back by
domain.guest.protocol.parse_sections). Section sizes come from the module's debug file (its ELF
section headers).
An address inside `[start, start + size)` of a module section is that section's offset, which
`addr2line -j <section>` resolves against the debug file, with inline chains, like vmlinux
addresses. `.init.text` is freed after the module's init ran, and its range may later hold
another module's code: the first section that contains an address wins.
"""

from __future__ import annotations

import bisect
import os
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from kernel_rules.domain.map.addr2src import Location, parse_addr2line


def debug_files(debug_dir: str) -> Dict[str, str]:
    """{module name (`-` as `_`): path of its debug file} under `debug_dir`."""
    out = {}
    for dirpath, _dirs, names in os.walk(debug_dir):
        for n in names:
            if n.endswith(".ko"):
                out[n[:-3].replace("-", "_")] = os.path.join(dirpath, n)
    return out


def section_sizes(ko: str) -> Dict[str, int]:
    """{section name: size} of the executable sections of a module file."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    with open(ko, "rb") as f:
        return {
            s.name: s["sh_size"]
            for s in ELFFile(f).iter_sections()
            if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s["sh_size"]
        }


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    module: str
    section: str


@dataclass
class ModuleSplit:
    """Traced addresses split into those of vmlinux and those of each module section."""

    vmlinux: List[int]
    sections: Dict[Tuple[str, str], List[int]]  # (module, section) -> absolute addresses
    missing_debug: List[str]  # loaded modules without a debug file


def split_addresses(
    addresses: Iterable[int], loaded: Mapping[str, Mapping[str, int]], debug: Mapping[str, str]
) -> ModuleSplit:
    spans: List[Span] = []
    missing = []
    for module, sections in sorted(loaded.items()):
        ko = debug.get(module)
        if ko is None:
            missing.append(module)
            continue
        sizes = section_sizes(ko)
        for section, start in sorted(sections.items()):
            if section in sizes:
                spans.append(Span(start, start + sizes[section], module, section))
    spans.sort(key=lambda s: s.start)
    starts = [s.start for s in spans]
    out = ModuleSplit([], defaultdict(list), missing)
    for a in sorted(set(addresses)):
        i = bisect.bisect_right(starts, a) - 1
        hit = next((s for s in spans[max(0, i - 8) : i + 1][::-1] if s.start <= a < s.end), None)
        if hit is None:
            out.vmlinux.append(a)
        else:
            out.sections[(hit.module, hit.section)].append(a)
    out.sections = dict(out.sections)
    return out


def resolve_modules(
    split: ModuleSplit,
    loaded: Mapping[str, Mapping[str, int]],
    debug: Mapping[str, str],
    prefixes: Sequence[str],
    addr2line: str = "addr2line",
) -> Dict[int, Location]:
    """Locations of every module address of `split`, keyed by its absolute address."""
    out: Dict[int, Location] = {}
    for (module, section), addresses in sorted(split.sections.items()):
        start = loaded[module][section]
        text = "".join(f"{a - start:#x}\n" for a in addresses)
        proc = subprocess.run(
            [addr2line, "-a", "-f", "-i", "-j", section, "-e", debug[module]],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        )
        for offset, loc in parse_addr2line(proc.stdout.splitlines(), prefixes).items():
            out[offset + start] = Location(offset + start, loc.frames)
    return out
