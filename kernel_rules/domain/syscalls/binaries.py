"""One ELF file for the syscall analysis: its symbols, imports, pointers in data, and the facts of
its functions (domain.syscalls.disasm over `objdump -d`).

`load(path, data_path, objdump)` reads `data_path` (the file's bytes; `path` is its name in the
guest) with pyelftools and disassembles it. A file that is not a 64-bit x86-64 ELF, or that
pyelftools or objdump cannot read, raises `Unreadable` with a message naming the file; a file
without a symbol table (stripped) is analysed through its dynamic symbols, the targets of its
direct calls and the code addresses it loads, and says so in `notes`.
"""

from __future__ import annotations

import subprocess
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from kernel_rules.domain.syscalls import disasm

DATA_WINDOW = 512  # bytes of a referenced data object searched for code pointers
DATA_DEPTH = 2  # data -> data pointer levels followed
TABLE_WINDOW = 8192  # bytes of an indexed table (`x(,%reg,8)`) searched for code pointers


class Unreadable(Exception):
    """The file cannot be analysed; the message names it and says why."""


@dataclass
class ElfObject:
    path: str
    entry: Optional[int]
    interp: Optional[str]
    needed: List[str]
    runpath: List[str]
    exports: Dict[str, int]  # defined dynamic (or, static, any global) function symbols
    got: Dict[int, str]  # memory slot -> imported symbol name
    data_ptrs: Dict[int, int]  # data address -> code or data address stored there
    object_starts: List[int]  # starts of data symbols (bounds of data objects)
    init_roots: List[int]  # DT_INIT, DT_FINI, init/fini/preinit arrays
    functions: Dict[int, disasm.Function]
    exec_ranges: List[Tuple[int, int]]
    is_executable: bool
    notes: List[str] = field(default_factory=list)

    def function_at(self, address: int) -> Optional[int]:
        order = self._order()
        k = bisect_right(order, address) - 1
        return order[k] if k >= 0 and self.is_code(address) else None

    def _order(self) -> List[int]:
        if not hasattr(self, "_sorted"):
            self._sorted = sorted(self.functions)
        return self._sorted

    def is_code(self, address: int) -> bool:
        return any(lo <= address < hi for lo, hi in self.exec_ranges)

    def name_of(self, start: int) -> str:
        f = self.functions.get(start)
        return f.name if f and f.name else f"fn_{start:x}"

    def pointers_from(self, address: int, window: int = DATA_WINDOW) -> Set[int]:
        """Code addresses stored in the data object at `address` (to DATA_DEPTH levels): up to
        `window` bytes, or to the next data symbol."""
        found: Set[int] = set()
        todo, seen = [(address, 0)], set()
        keys = sorted(self.data_ptrs)
        while todo:
            a, depth = todo.pop()
            if a in seen:
                continue
            seen.add(a)
            k = bisect_right(self.object_starts, a)
            end = a + (window if a == address else DATA_WINDOW)
            if k < len(self.object_starts):
                end = min(end, max(self.object_starts[k], a + 8))
            i = bisect_right(keys, a - 1)
            while i < len(keys) and keys[i] < end:
                v = self.data_ptrs[keys[i]]
                if self.is_code(v):
                    found.add(v)
                elif depth < DATA_DEPTH:
                    todo.append((v, depth + 1))
                i += 1
        return found


def check_elf(path: str, data: bytes) -> None:
    if data[:4] != b"\x7fELF":
        raise Unreadable(f"{path}: not an ELF file (starts with {data[:4]!r}): not analysed")
    if data[4] != 2:
        raise Unreadable(f"{path}: a 32-bit ELF file: only x86-64 programs are analysed")
    order = "little" if data[5] == 1 else "big"
    machine = int.from_bytes(data[18:20], order)
    if machine != 62:
        raise Unreadable(
            f"{path}: an ELF file for machine {machine} (not x86-64, 62): not analysed"
        )


def _symbols(elf: ELFFile) -> Tuple[Dict[int, str], Dict[str, int], List[int], bool]:
    funcs: Dict[int, str] = {}
    exports: Dict[str, int] = {}
    objects: Set[int] = set()
    has_symtab = False
    for section in elf.iter_sections():
        if not isinstance(section, SymbolTableSection):
            continue
        dynamic = section.name == ".dynsym"
        has_symtab |= section.name == ".symtab"
        for sym in section.iter_symbols():
            kind = sym["st_info"]["type"]
            if sym["st_shndx"] == "SHN_UNDEF" or not sym["st_value"]:
                continue
            name = sym.name
            if kind in ("STT_FUNC", "STT_GNU_IFUNC"):
                funcs.setdefault(sym["st_value"], name)
                if dynamic or sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK"):
                    exports.setdefault(name, sym["st_value"])
            elif kind in ("STT_OBJECT", "STT_TLS"):
                objects.add(sym["st_value"])
    return funcs, exports, sorted(objects), has_symtab


def _relocations(elf: ELFFile) -> Tuple[Dict[int, str], Dict[int, int]]:
    got: Dict[int, str] = {}
    ptrs: Dict[int, int] = {}
    for section in elf.iter_sections():
        if not isinstance(section, RelocationSection):
            continue
        symtab = elf.get_section(section["sh_link"]) if section["sh_link"] else None
        for rel in section.iter_relocations():
            offset = rel["r_offset"]
            index = rel["r_info_sym"]
            addend = rel["r_addend"] if rel.is_RELA() else 0
            if index and isinstance(symtab, SymbolTableSection):
                sym = symtab.get_symbol(index)
                if sym["st_shndx"] == "SHN_UNDEF":
                    got[offset] = sym.name
                else:
                    ptrs[offset] = sym["st_value"] + addend
            elif addend:
                ptrs[offset] = addend  # R_X86_64_RELATIVE / IRELATIVE
    return got, ptrs


def _data_words(elf: ELFFile, exec_ranges: List[Tuple[int, int]]) -> Dict[int, int]:
    """Absolute code pointers stored in the data sections of a non-relocatable file."""
    out: Dict[int, int] = {}
    for section in elf.iter_sections():
        flags = section["sh_flags"]
        if section["sh_type"] != "SHT_PROGBITS" and section.name not in (
            ".init_array",
            ".fini_array",
            ".preinit_array",
        ):
            continue
        if flags & 0x4 or not flags & 0x2:  # executable, or not allocated
            continue
        base, data = section["sh_addr"], section.data()
        for off in range(0, len(data) - 7, 8):
            v = int.from_bytes(data[off : off + 8], "little")
            if any(lo <= v < hi for lo, hi in exec_ranges):
                out[base + off] = v
    return out


def _init_roots(elf: ELFFile, ptrs: Dict[int, int]) -> List[int]:
    roots: List[int] = []
    for name in (".init_array", ".fini_array", ".preinit_array"):
        section = elf.get_section_by_name(name)
        if section is None:
            continue
        base = section["sh_addr"]
        for off in range(0, section["sh_size"], 8):
            if base + off in ptrs:
                roots.append(ptrs[base + off])
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                if tag.entry.d_tag in ("DT_INIT", "DT_FINI"):
                    roots.append(tag.entry.d_val)
    return roots


def _dynamic(elf: ELFFile) -> Tuple[Optional[str], List[str], List[str]]:
    interp = None
    needed: List[str] = []
    runpath: List[str] = []
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_INTERP":
            interp = seg.get_interp_name()
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.append(tag.needed)
                elif tag.entry.d_tag == "DT_RUNPATH":
                    runpath += [p for p in tag.runpath.split(":") if p]
                elif tag.entry.d_tag == "DT_RPATH":
                    runpath += [p for p in tag.rpath.split(":") if p]
    return interp, needed, runpath


def objdump_text(objdump: str, data_path: str, path: str) -> str:
    proc = subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", "-w", data_path],
        capture_output=True,
        text=True,
        errors="replace",
    )
    if proc.returncode != 0:
        raise Unreadable(f"{path}: objdump cannot disassemble it: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def load(path: str, data_path: str, objdump: str) -> ElfObject:
    """The analysed ELF file at `data_path`, named `path` in messages and results."""
    with open(data_path, "rb") as f:
        data = f.read()
    check_elf(path, data)
    try:
        with open(data_path, "rb") as f:
            elf = ELFFile(f)
            exec_ranges = [
                (s["sh_addr"], s["sh_addr"] + s["sh_size"])
                for s in elf.iter_sections()
                if s["sh_flags"] & 0x4 and s["sh_addr"]
            ]
            funcs, exports, objects, has_symtab = _symbols(elf)
            got, ptrs = _relocations(elf)
            words = _data_words(elf, exec_ranges) if elf["e_type"] == "ET_EXEC" else {}
            ptrs = {**words, **ptrs}
            init_roots = _init_roots(elf, ptrs)
            interp, needed, runpath = _dynamic(elf)
            entry = elf["e_entry"] or None
            is_executable = elf["e_type"] == "ET_EXEC" or interp is not None
    except (ELFError, ValueError, KeyError, OSError) as e:
        raise Unreadable(f"{path}: not a readable ELF file ({e}): not analysed") from e
    insns, labels = disasm.parse(objdump_text(objdump, data_path, path))
    if not insns:
        raise Unreadable(f"{path}: objdump found no instructions in it: not analysed")
    notes = [] if has_symtab else [f"{path}: no symbol table (stripped): dynamic symbols only"]

    def is_code(a: int) -> bool:
        return any(lo <= a < hi for lo, hi in exec_ranges)

    starts: Dict[int, str] = {a: disasm.clean_name(n) for a, n in labels.items()}
    for a, n in funcs.items():
        if n:
            starts[a] = n
    for a in disasm.call_targets(insns):
        if is_code(a):
            starts.setdefault(a, "")
    extra = {a for a in [entry, *init_roots] if a and is_code(a)}
    for a in extra:
        starts.setdefault(a, "")
    # Code addresses loaded by code or stored in data are function starts too.
    for i in insns:
        if i.comment is not None and "(%rip)" in i.operands and i.mnemonic.startswith("lea"):
            if is_code(i.comment):
                starts.setdefault(i.comment, "")
        elif i.mnemonic.startswith("mov") and i.operands.startswith("$0x"):
            value = int(i.operands[1:].split(",", 1)[0], 16)
            if value > 0x1000 and is_code(value):
                starts.setdefault(value, "")
    for v in ptrs.values():
        if is_code(v):
            starts.setdefault(v, "")
    wrappers = {a for a, n in starts.items() if n == disasm.WRAPPER}  # also `syscall@plt`
    functions = disasm.function_facts(insns, starts, is_code, wrappers)
    return ElfObject(
        path=path,
        entry=entry if entry and is_code(entry) else None,
        interp=interp,
        needed=needed,
        runpath=runpath,
        exports=exports,
        got=got,
        data_ptrs=ptrs,
        object_starts=objects,
        init_roots=[a for a in init_roots if is_code(a)],
        functions=functions,
        exec_ranges=exec_ranges,
        is_executable=is_executable,
        notes=notes,
    )
