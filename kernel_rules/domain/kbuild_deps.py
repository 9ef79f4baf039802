"""What Kbuild must recompile for a configuration change: the lower bound of an incremental build.

Kbuild's `fixdep` rewrites each object's dependency file (`.<obj>.cmd`) so that it names
`include/config/<SYMBOL>` for every CONFIG symbol the object's sources mention; `syncconfig`
touches exactly the files of symbols whose value changed. So an object *must* be recompiled when
its dependency file names a changed symbol, when it is new in the image, or when it embeds the
layout of vmlinux itself (the `arch/x86/boot` objects of bzImage, rebuilt whenever vmlinux changes).
Anything else Kbuild recompiles is outside the lower bound.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Iterable, Mapping, Set

_CONFIG_DEP = re.compile(r"include/config/([A-Za-z0-9_]+)\)")
IMAGE_ASSEMBLY_PREFIX = "arch/x86/boot/"


def object_symbols(tree: str) -> Dict[str, Set[str]]:
    """{object path relative to `tree`: CONFIG symbols its dependency file names}."""
    out: Dict[str, Set[str]] = {}
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            if name.startswith(".") and name.endswith(".o.cmd"):
                path = os.path.join(dirpath, name)
                with open(path, errors="replace") as f:
                    syms = set(_CONFIG_DEP.findall(f.read()))
                out[os.path.relpath(os.path.join(dirpath, name[1:-4]), tree)] = syms
    return out


def changed_symbols(old: Mapping[str, str], new: Mapping[str, str]) -> Set[str]:
    return {s for s in set(old) | set(new) if old.get(s, "n") != new.get(s, "n")}


def lower_bound(before: Mapping[str, Set[str]], changed: Iterable[str],
                after_objects: Iterable[str]) -> Set[str]:
    """Objects any correct incremental build must compile: those whose dependencies (as of
    `before`) name a changed symbol, those new in `after_objects`, and image-assembly objects."""
    changed, after_objects = set(changed), list(after_objects)
    need = {obj for obj, syms in before.items() if syms & changed}
    need |= {obj for obj in after_objects if obj not in before}
    need |= {obj for obj in after_objects if obj.startswith(IMAGE_ASSEMBLY_PREFIX)}
    return need
