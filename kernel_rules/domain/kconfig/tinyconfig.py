"""What `make tinyconfig` gives, read with kconfiglib: the floor a minimisation may reach.

`tinyconfig(kconf, srctree, arch)` replays the kernel's own recipe on a loaded Kconfig tree
(allnoconfig with `kernel/configs/tiny-base.config`, then the generic and the architecture's
`tiny.config`) and returns the member each choice picks and the bool/tristate symbols on.
Kept apart from domain.kconfig.tree, which the build process ships: composition alone uses it.
"""

from __future__ import annotations

import os
from typing import Dict, FrozenSet, Tuple


# What `make tinyconfig` merges: allnoconfig with tiny-base.config as KCONFIG_ALLCONFIG, then
# the generic and the architecture's tiny.config.
TINY_FRAGMENTS = (
    "kernel/configs/tiny-base.config",
    "kernel/configs/tiny.config",
    "arch/{srcarch}/configs/tiny.config",
)


def tinyconfig(kconf, srctree: str, arch: str) -> Tuple[Dict[str, str], FrozenSet[str]]:
    """What `make tinyconfig` gives: ({member: the member it picks} for every member of every
    choice with a pick there, the bool/tristate symbols it has on). Loads tinyconfig's values
    into `kconf`: load another configuration afterwards where its values matter."""
    import kconfiglib

    srcarch = "x86" if arch in ("x86_64", "i386", "x86") else arch
    kinds = (kconfiglib.BOOL, kconfiglib.TRISTATE)
    warn = kconf.warn
    kconf.warn = False
    try:
        for sym in kconf.unique_defined_syms:  # allnoconfig, as kconfiglib's allnoconfig.py
            if sym.orig_type in kinds:
                sym.set_value(2 if sym.is_allnoconfig_y else 0)
        for fragment in TINY_FRAGMENTS:
            path = os.path.join(srctree, fragment.format(srcarch=srcarch))
            if os.path.exists(path):
                kconf.load_config(path, replace=False)
    finally:
        kconf.warn = warn
    picks = {
        member.name: choice.selection.name
        for choice in kconf.unique_choices
        if choice.selection is not None
        for member in choice.syms
    }
    on = frozenset(
        s.name for s in kconf.unique_defined_syms if s.orig_type in kinds and s.tri_value
    )
    return picks, on
