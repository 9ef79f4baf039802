"""The syscalls one program can make: a call graph from its entry point through its libraries.

`reachable_syscalls(program, open_object)` starts at the program's entry point and its
initialisers (and those of every library it loads, and the dynamic loader's entry point) and
follows, function by function:

- direct calls and jumps;
- code addresses a function loads (`lea`, `mov $imm`): a function pointer it may call or pass on;
- calls and jumps through a memory slot: a GOT or PLT slot is an import, resolved to the first
  loaded object (the program, then its libraries breadth first, as the loader searches) that
  exports that name; any other slot with a code pointer in it, that pointer;
- data objects a function loads the address of: the code pointers stored in them (a table of
  callbacks, a FILE's vtable; to a depth of two pointer levels), and the code pointers of the
  tables it indexes by absolute address (`0x4ec478(,%rax,8)`: busybox's applet table).

So a dynamically linked program is charged with the library functions it imports and what they
reach, not with the whole of libc. Missed: indirect calls through pointers computed or loaded in
other ways (counted per function in `indirect_calls`), syscall numbers not constant in the same
basic block (reported with number None), and code run by signal handlers or other processes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Set, Tuple

from kernel_rules.domain.syscalls import disasm
from kernel_rules.domain.syscalls.binaries import TABLE_WINDOW, ElfObject


@dataclass(frozen=True)
class Found:
    """A syscall site reached from the program: where, and the number if known."""

    number: Optional[int]
    binary: str
    function: str
    address: int
    via: str


@dataclass
class ProgramSyscalls:
    program: str
    objects: List[str]
    sites: List[Found] = field(default_factory=list)
    functions_reached: int = 0
    indirect_calls: int = 0
    unresolved_imports: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def numbers(self) -> Set[int]:
        return {s.number for s in self.sites if s.number is not None}


def reachable_syscalls(
    program: ElfObject, open_needed: Callable[[ElfObject, str], Optional[ElfObject]]
) -> ProgramSyscalls:
    """`open_needed(obj, name)` returns the loaded object of a DT_NEEDED name (or the interpreter's
    path) of `obj`, or None when it is not in the image or not readable (noted in the result)."""
    objects: List[ElfObject] = [program]
    result = ProgramSyscalls(program.path, [])
    seen_paths = {program.path}
    loader: Optional[ElfObject] = None
    queue = deque([program])
    while queue:
        obj = queue.popleft()
        names = ([obj.interp] if obj.interp else []) + obj.needed
        for name in names:
            lib = open_needed(obj, name)
            if lib is None:
                result.notes.append(
                    f"{obj.path}: needs {name}, which is not in the image or not readable"
                )
                continue
            if obj is program and name == program.interp:
                loader = lib
            if lib.path not in seen_paths:
                seen_paths.add(lib.path)
                objects.append(lib)
                queue.append(lib)
    result.objects = [o.path for o in objects]
    for o in objects:
        result.notes += o.notes

    def export(name: str) -> Optional[Tuple[ElfObject, int]]:
        for o in objects:
            if name in o.exports and o.function_at(o.exports[name]) is not None:
                return o, o.function_at(o.exports[name])
        return None

    todo: deque = deque()
    done: Set[Tuple[str, int]] = set()

    def push(o: ElfObject, address: Optional[int]) -> None:
        if address is None:
            return
        start = o.function_at(address)
        if start is not None and (o.path, start) not in done:
            done.add((o.path, start))
            todo.append((o, start))

    for o in objects:
        for a in o.init_roots:
            push(o, a)
    push(program, program.entry)
    if loader is not None:
        push(loader, loader.entry)
    unresolved: Set[str] = set()
    while todo:
        o, start = todo.popleft()
        f = o.functions[start]
        result.indirect_calls += f.indirect
        for site in f.sites:
            if site.via == "syscall" and f.name == disasm.WRAPPER:
                continue  # the wrapper's own instruction: its callers' numbers count
            result.sites.append(
                Found(site.number, o.path, o.name_of(start), site.address, site.via)
            )
        for a in f.calls | f.code_refs:
            push(o, a)
        for slot in f.slots:
            if slot in o.got:
                hit = export(o.got[slot])
                if hit is None:
                    unresolved.add(o.got[slot])
                else:
                    push(*hit)
            elif slot in o.data_ptrs:
                push(o, o.data_ptrs[slot])
        for d in f.data_refs:
            if d in o.got:
                hit = export(o.got[d])
                if hit is not None:
                    push(*hit)
            for a in o.pointers_from(d):
                push(o, a)
        for t in f.tables:
            if o.is_code(t):
                push(o, t)
            for a in o.pointers_from(t, TABLE_WINDOW):
                push(o, a)
    result.functions_reached = len(done)
    result.unresolved_imports = sorted(unresolved)
    result.sites.sort(key=lambda s: (s.binary, s.address))
    return result
