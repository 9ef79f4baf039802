"""Kernel instruction addresses from QEMU's `-d in_asm` log.

QEMU (TCG) logs every translated block as `IN: [symbol]` followed by one line per instruction,
`0x<address>:  <bytes>  <disassembly>`. Blocks appear in translation order, so the log is also a
coarse timeline of the boot:

1. firmware, the real-mode setup code and the decompressor (not part of vmlinux: counted, not
   mapped);
2. vmlinux's first instructions run at their *physical* addresses (`startup_64` at
   `CONFIG_PHYSICAL_START`, 0x1000000 with `nokaslr`) until the kernel switches to its virtual
   mapping: those are rebased to virtual addresses (`+ __START_KERNEL_map`);
3. everything else at kernel virtual addresses (vmlinux, then modules).

User-space addresses are dropped, except the markers: a guest program that jumps to a fixed
user address shows up as a block at exactly that address. In a boot, the baseline's /init jumps
to `USERSPACE_BEGIN` first of all, and the tracer stops the guest there and switches logging to
`in_asm,nochain` (QEMU's translation cache is flushed, so every block executed afterwards is
translated and logged again, even code that already ran): `kernel_addresses()` splits the boot
at the first block at `USERSPACE_BEGIN` into the *init* phase (kernel initialisation, up to the
first user-space program) and the *boot* phase (the user-space boot, complete). An app's
window is the same: `window_addresses()` returns exactly the kernel code executed between the
blocks at `WINDOW_BEGIN` and `WINDOW_END`, its *app* phase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import IO, Dict, FrozenSet, Iterable, Iterator, Set

from kernel_rules.domain.guest.protocol import USERSPACE_BEGIN, WINDOW_BEGIN, WINDOW_END

KERNEL_VIRTUAL_MIN = 0xFFFF800000000000
START_KERNEL_MAP = 0xFFFFFFFF80000000
DEFAULT_PHYSICAL_START = 0x1000000
INIT, BOOT, APP = "init", "boot", "app"  # the phases of evidence

_INSN = re.compile(r"^0x([0-9a-f]+):")


@dataclass
class Trace:
    """Addresses (virtual) of kernel instructions, with counts of what was left out."""

    kernel: Set[int] = field(default_factory=set)
    pre_kernel_instructions: int = 0  # firmware, setup, decompressor (distinct addresses)
    user_instructions: int = 0
    window_found: bool = False
    phases: Dict[str, Set[int]] = field(default_factory=dict)  # phase -> its kernel addresses
    userspace_found: bool = False  # a boot: the USERSPACE_BEGIN block was logged

    def phases_of(self, address: int) -> FrozenSet[str]:
        return frozenset(p for p, addrs in self.phases.items() if address in addrs)


def instruction_addresses(log: Iterable[str]) -> Iterator[int]:
    """Every instruction address in an `in_asm` log, in log order."""
    for line in log:
        m = _INSN.match(line)
        if m:
            yield int(m.group(1), 16)


def kernel_addresses(
    log: Iterable[str],
    physical_start: int = DEFAULT_PHYSICAL_START,
    image_size: int = 1 << 30,
    boundary: int = USERSPACE_BEGIN,
) -> Trace:
    """All kernel addresses of a whole boot log (see the module docstring for its stages), each
    in phase `init` when logged before the first block at `boundary`, `boot` when after it (an
    address may be in both). Without that block, everything is `init` and `userspace_found`
    is False."""
    trace = Trace()
    pre: Set[int] = set()
    init: Set[int] = set()
    boot: Set[int] = set()
    current = init
    stage = "pre"  # -> "physical" at startup_64 -> "virtual" at the first kernel virtual address
    for addr in instruction_addresses(log):
        if addr >= KERNEL_VIRTUAL_MIN:
            stage = "virtual"
            current.add(addr)
        elif addr == boundary and not trace.userspace_found:
            trace.userspace_found = True
            current = boot
            trace.user_instructions += 1
        elif stage == "pre" and addr != physical_start:
            pre.add(addr)
        elif stage != "virtual" and physical_start <= addr < physical_start + image_size:
            stage = "physical"
            current.add(addr + START_KERNEL_MAP)
        else:
            trace.user_instructions += 1
    trace.kernel = init | boot
    trace.phases = {INIT: init, BOOT: boot}
    trace.pre_kernel_instructions = len(pre)
    return trace


def window_addresses(log: Iterable[str], begin: int = WINDOW_BEGIN, end: int = WINDOW_END) -> Trace:
    """Kernel addresses logged after the first `begin` marker block and before the next `end`
    marker block. `window_found` is False when either marker is missing."""
    trace = Trace()
    state = "before"
    for addr in instruction_addresses(log):
        if state == "before":
            if addr == begin:
                state = "inside"
        elif state == "inside":
            if addr == end:
                state = "after"
                break
            if addr >= KERNEL_VIRTUAL_MIN:
                trace.kernel.add(addr)
            else:
                trace.user_instructions += 1
    trace.window_found = state == "after"
    trace.phases = {APP: trace.kernel}
    return trace


def read_log(f: IO[str]) -> Iterator[str]:
    for line in f:
        yield line
