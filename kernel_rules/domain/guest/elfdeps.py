"""The shared libraries a host program needs, from its ELF dynamic section (pyelftools).

`closure(paths)` returns every file the programs need at run time: the programs, the `PT_INTERP`
loader, and each `DT_NEEDED` library searched like the glibc loader does (`DT_RPATH` when there is
no `DT_RUNPATH`, then `DT_RUNPATH`, then the Debian multiarch and default directories), followed
transitively. Symlinks are kept as the loader would see them (the file at the path it opens).
A library that cannot be found raises `MissingLibrary` naming the program that needs it.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

DEFAULT_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)


class MissingLibrary(Exception):
    pass


class NotAnElf(Exception):
    pass


def _dynamic_info(path: str):
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            raise NotAnElf(f"{path} is not an ELF program")
        f.seek(0)
        elf = ELFFile(f)
        interp: Optional[str] = None
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                interp = seg.get_interp_name()
        needed: List[str] = []
        rpath: List[str] = []
        runpath: List[str] = []
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        needed.append(tag.needed)
                    elif tag.entry.d_tag == "DT_RPATH":
                        rpath += tag.rpath.split(":")
                    elif tag.entry.d_tag == "DT_RUNPATH":
                        runpath += tag.runpath.split(":")
        origin = os.path.dirname(os.path.abspath(path))
        fix = lambda dirs: [d.replace("$ORIGIN", origin) for d in dirs if d]  # noqa: E731
        return interp, needed, fix(rpath if not runpath else []) + fix(runpath)


def closure(programs: Iterable[str], search: Iterable[str] = DEFAULT_DIRS) -> List[str]:
    """Sorted absolute paths of `programs` and everything they load."""
    found: Dict[str, None] = {}
    todo = [os.path.abspath(p) for p in programs]
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found[path] = None
        interp, needed, dirs = _dynamic_info(path)
        if interp and interp not in found:
            todo.append(interp)
        for lib in needed:
            for d in [*dirs, *search]:
                candidate = os.path.join(d, lib)
                if os.path.exists(candidate):
                    todo.append(candidate)
                    break
            else:
                raise MissingLibrary(f"{path} needs {lib}, which is in none of {[*dirs, *search]}")
    return sorted(found)
