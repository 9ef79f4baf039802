"""Syscall sites in `objdump -d --no-show-raw-insn -w` output (x86-64, AT&T syntax).

`parse(text)` reads the disassembly into instructions and objdump's symbol labels;
`function_facts(insns, starts, ...)` splits it into functions at `starts` (symbols, direct call
targets, code addresses the code loads) and gives, per function:

- every `syscall` instruction with the number in `%rax` when it is known: a tiny constant
  propagation over the 16 general registers inside one basic block (`mov $imm`, `xor r,r`,
  register-to-register `mov`; any other write to a register forgets it; a jump target, a branch,
  a call or a `syscall` ends the block);
- every direct call of a function named `syscall` (libc's wrapper) with the number in `%edi`;
- the direct calls and jumps to other functions, the code addresses it loads (`lea`/`mov $imm`,
  possible indirect-call targets), the memory slots it calls or jumps through (`*0x..(%rip)`:
  PLT and GOT slots, resolved by the caller), the data addresses it loads, and its indirect
  calls through registers (not followed).

Standard library only.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

_HEADER = re.compile(r"^([0-9a-f]+) <(.+)>:$")
_INSN = re.compile(r"^\s*([0-9a-f]+):\t(.*)$")
_TARGET = re.compile(r"^(?:0x)?([0-9a-f]+)(?: <[^>]*>)?$")
_COMMENT = re.compile(r"#\s*([0-9a-f]+)(?: <[^>]*>)?\s*$")
_TABLE = re.compile(r"(?:^|[,*])(0x[0-9a-f]+)\(,%\w+,8\)")
_IMM = re.compile(r"^\$(-?0x[0-9a-f]+|-?\d+)$")
PREFIXES = frozenset(
    "bnd notrack lock rep repz repnz repe repne data16 cs ds es fs gs ss addr32 rex rex.w".split()
)
BRANCHES = frozenset(
    "jmp ja jae jb jbe jc jcxz jecxz jrcxz je jg jge jl jle jna jnae jnb jnbe jnc jne jng jnge "
    "jnl jnle jno jnp jns jnz jo jp jpe jpo js jz loop loope loopne".split()
)
ENDS = frozenset({"ret", "hlt", "ud2", "iret", "iretq", "sysret"})
NO_WRITE = frozenset(
    {"cmp", "test", "push", "bt", "nop", "endbr64", "cmpl", "cmpq", "cmpb", "cmpw", "testb"}
    | {"testl", "testq", "testw", "pushq", "prefetcht0", "prefetchw", "clflush"}
)
WRAPPER = "syscall"

_REG64 = {}
for _i, _names in enumerate(
    [
        ("rax", "eax", "ax", "al", "ah"),
        ("rbx", "ebx", "bx", "bl", "bh"),
        ("rcx", "ecx", "cx", "cl", "ch"),
        ("rdx", "edx", "dx", "dl", "dh"),
        ("rsi", "esi", "si", "sil"),
        ("rdi", "edi", "di", "dil"),
        ("rbp", "ebp", "bp", "bpl"),
        ("rsp", "esp", "sp", "spl"),
    ]
):
    for _n in _names:
        _REG64[_n] = _names[0]
for _k in range(8, 16):
    for _suffix in ("", "d", "w", "b"):
        _REG64[f"r{_k}{_suffix}"] = f"r{_k}"
_FULL = {n for n in _REG64 if n.startswith("e") or (n.startswith("r") and n[-1] not in "wb")}


@dataclass(frozen=True)
class Insn:
    address: int
    mnemonic: str
    operands: str  # without objdump's `# ...` comment
    target: Optional[int]  # a direct branch/call target
    comment: Optional[int]  # the address objdump resolved in its `# ...` comment


@dataclass(frozen=True)
class Site:
    """A syscall instruction or a `syscall()` wrapper call: `number` None when unknown."""

    address: int
    number: Optional[int]
    via: str  # "syscall" (the instruction) | "wrapper" (a call of libc's syscall())


@dataclass
class Function:
    start: int
    name: str
    sites: List[Site] = field(default_factory=list)
    calls: Set[int] = field(default_factory=set)  # direct call/jump targets outside itself
    code_refs: Set[int] = field(default_factory=set)  # code addresses loaded (lea / mov $imm)
    slots: Set[int] = field(default_factory=set)  # memory called or jumped through
    data_refs: Set[int] = field(default_factory=set)  # other rip-relative addresses loaded
    tables: Set[int] = field(default_factory=set)  # absolute data addresses: x(,%r,8), mov $x
    indirect: int = 0  # calls/jumps through a register or computed memory


def _split(text: str) -> Tuple[str, str, Optional[int]]:
    comment = None
    m = _COMMENT.search(text)
    if m:
        comment = int(m.group(1), 16)
        text = text[: m.start()]
    words = text.split()
    while words and words[0] in PREFIXES:
        words = words[1:]
    if not words:
        return "", "", comment
    return words[0], " ".join(words[1:]), comment


def parse(text: str) -> Tuple[List[Insn], Dict[int, str]]:
    """Instructions in address order and objdump's labels (address -> symbol name)."""
    insns: List[Insn] = []
    labels: Dict[int, str] = {}
    for line in text.splitlines():
        m = _INSN.match(line)
        if m:
            mnemonic, operands, comment = _split(m.group(2))
            if not mnemonic or mnemonic.startswith("("):
                continue
            target = None
            if mnemonic.startswith(("j", "call", "loop")) and not operands.startswith("*"):
                t = _TARGET.match(operands)
                if t:
                    target = int(t.group(1), 16)
            insns.append(Insn(int(m.group(1), 16), mnemonic, operands, target, comment))
            continue
        h = _HEADER.match(line)
        if h:
            labels.setdefault(int(h.group(1), 16), h.group(2))
    insns.sort(key=lambda i: i.address)
    return insns, labels


def clean_name(name: str) -> str:
    """`puts@plt` / `write@@GLIBC_2.2.5` / `f+0x10` -> the plain symbol name."""
    name = name.split("+", 1)[0]
    for sep in ("@@", "@"):
        name = name.split(sep, 1)[0]
    return name


def _operands(ops: str) -> List[str]:
    out, depth, cur = [], 0, ""
    for ch in ops:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _reg(op: str) -> Optional[str]:
    if op.startswith("%") and op[1:] in _REG64:
        return op[1:]
    return None


def _imm(op: str) -> Optional[int]:
    m = _IMM.match(op)
    return int(m.group(1), 0) if m else None


def call_targets(insns: Iterable[Insn]) -> Set[int]:
    return {i.target for i in insns if i.target is not None and i.mnemonic.startswith("call")}


def function_facts(
    insns: Sequence[Insn],
    starts: Dict[int, str],
    is_code,
    wrapper_starts: Set[int],
) -> Dict[int, Function]:
    """Per function start: its Function. `starts` maps each start to a name (may be empty);
    `is_code(address)` says whether an address is in an executable section; `wrapper_starts`
    are the starts of functions that are libc's `syscall()` (or its PLT stub)."""
    order = sorted(starts)
    funcs = {s: Function(s, starts[s]) for s in order}
    jump_targets = {i.target for i in insns if i.target is not None}
    regs: Dict[str, int] = {}
    current: Optional[Function] = None
    for insn in insns:
        k = bisect_right(order, insn.address) - 1
        if k < 0:
            continue
        f = funcs[order[k]]
        if f is not current or insn.address in jump_targets or insn.address in funcs:
            regs = {}
            current = f
        mn, ops = insn.mnemonic, insn.operands
        for m in _TABLE.finditer(ops):
            f.tables.add(int(m.group(1), 16))
        if mn == "syscall":
            f.sites.append(Site(insn.address, regs.get("rax"), "syscall"))
            regs = {}
            continue
        if mn.startswith("call") or mn in BRANCHES:
            if insn.target is not None:
                if insn.target in wrapper_starts and mn.startswith("call"):
                    f.sites.append(Site(insn.address, regs.get("rdi"), "wrapper"))
                tk = bisect_right(order, insn.target) - 1
                if tk >= 0 and order[tk] != f.start:
                    f.calls.add(order[tk])
            elif ops.startswith("*"):
                if "(%rip)" in ops and insn.comment is not None:
                    f.slots.add(insn.comment)
                else:
                    f.indirect += 1
            regs = {}
            continue
        if mn in ENDS:
            regs = {}
            continue
        parts = _operands(ops)
        if insn.comment is not None and "(%rip)" in ops:
            if mn.startswith("lea") or mn.startswith("mov"):
                (f.code_refs if is_code(insn.comment) else f.data_refs).add(insn.comment)
        if parts:
            imm = _imm(parts[0])
            if imm is not None and mn.startswith("mov") and imm > 0x1000:
                (f.code_refs if is_code(imm) else f.tables).add(imm)
        _track(mn, parts, regs)
    return funcs


def _track(mn: str, parts: List[str], regs: Dict[str, int]) -> None:
    if not parts or mn in NO_WRITE:
        return
    dst = _reg(parts[-1])
    if mn in ("cltq", "cqto", "cltd", "cwtl"):
        regs.pop("rax", None)
        regs.pop("rdx", None)
        return
    if mn.startswith("xchg") and len(parts) == 2:
        for p in parts:
            r = _reg(p)
            if r:
                regs.pop(_REG64[r], None)
        return
    if dst is None:
        return
    full = _REG64[dst]
    if mn.startswith("mov") and len(parts) == 2 and dst in _FULL:
        imm = _imm(parts[0])
        src = _reg(parts[0])
        if imm is not None:
            wide = not (dst.startswith("e") or dst.endswith("d"))
            regs[full] = imm & (0xFFFFFFFFFFFFFFFF if wide else 0xFFFFFFFF)
            return
        if src is not None and _REG64[src] in regs and src in _FULL:
            regs[full] = regs[_REG64[src]]
            return
    if mn.startswith("xor") and len(parts) == 2 and parts[0] == parts[1] and dst in _FULL:
        regs[full] = 0
        return
    regs.pop(full, None)
