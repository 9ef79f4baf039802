"""What Kbuild must recompile for a configuration change: the lower bound of an incremental build.

Kbuild's `fixdep` rewrites each object's dependency file (`.<obj>.cmd`) so that it names
`include/config/<SYMBOL>` for every CONFIG symbol the object's sources mention (instead of the
whole autoconf.h), and the files it includes; `syncconfig` touches exactly the files of symbols
whose value changed. So an object *must* be recompiled when
- its dependency file names a changed symbol;
- its dependency file names a generated header whose content the change altered (e.g.
  `include/generated/asm-offsets.h`, whose offsets move when a structure gains a field);
- it is new in the image;
- its compile command changed (Kbuild's `if_changed`: flags that follow the configuration, such as
  the `-g` of DEBUG_INFO, change every object's command, and the object with them); seen by
  comparing the `cmd_<object>` line of its dependency file before and after the build;
- it embeds the layout of vmlinux itself (the `arch/x86/boot` objects of bzImage, rebuilt
  whenever vmlinux changes);
- it embeds the configuration itself (`kernel/configs.o`, IKCONFIG: `.incbin` of
  `kernel/config_data.gz`, regenerated from `.config` whenever any symbol changes);
- it embeds the vDSO (`arch/x86/entry/vdso/vdso-image-64.o`, compiled from the C file `vdso2c`
  writes from the linked vDSO) and an object of that vDSO must be recompiled.
Anything else Kbuild recompiles is outside the lower bound.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Dict, Iterable, Mapping, Set, Tuple

_CONFIG_DEP = re.compile(r"include/config/([A-Za-z0-9_]+)\)")
_GENERATED_DEP = re.compile(r"((?:arch/[a-z0-9_]+/)?include/generated/[A-Za-z0-9_./-]+)")
IMAGE_ASSEMBLY_PREFIX = "arch/x86/boot/"
EMBEDDED_CONFIG = "kernel/configs.o"
VDSO_IMAGE_PREFIX = "vdso-image-"  # arch/x86/entry/vdso/vdso-image-64.c: vdso2c's output
GENERATED_DIRS = ("include/generated", "arch/x86/include/generated")

ObjectDeps = Dict[str, Tuple[Set[str], Set[str]]]  # obj -> (CONFIG symbols, generated headers)


def object_deps(tree: str) -> ObjectDeps:
    """{object path relative to `tree`: (CONFIG symbols, generated headers) its .cmd names}."""
    out: ObjectDeps = {}
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            if name.startswith(".") and name.endswith(".o.cmd"):
                with open(os.path.join(dirpath, name), errors="replace") as f:
                    text = f.read()
                obj = os.path.relpath(os.path.join(dirpath, name[1:-4]), tree)
                out[obj] = (set(_CONFIG_DEP.findall(text)), set(_GENERATED_DEP.findall(text)))
    return out


def object_symbols(tree: str) -> Dict[str, Set[str]]:
    """{object: CONFIG symbols its dependency file names}."""
    return {obj: syms for obj, (syms, _gen) in object_deps(tree).items()}


def generated_digests(tree: str) -> Dict[str, str]:
    """sha256 of every generated header in `tree`, by path relative to it."""
    out = {}
    for d in GENERATED_DIRS:
        for dirpath, _dirs, files in os.walk(os.path.join(tree, d)):
            for name in files:
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    out[os.path.relpath(path, tree)] = hashlib.sha256(f.read()).hexdigest()
    return out


def object_commands(tree: str) -> Dict[str, str]:
    """{object: sha256 of the compile command its dependency file records (`cmd_<obj> := ...`)}."""
    out: Dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            if name.startswith(".") and name.endswith(".o.cmd"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    first = f.readline()
                obj = os.path.relpath(os.path.join(dirpath, name[1:-4]), tree)
                out[obj] = hashlib.sha256(first).hexdigest()
    return out


def changed_commands(old: Mapping[str, str], new: Mapping[str, str]) -> Set[str]:
    """Objects in both `object_commands` maps whose command differs."""
    return {o for o in old if o in new and old[o] != new[o]}


def changed_symbols(old: Mapping[str, str], new: Mapping[str, str]) -> Set[str]:
    return {s for s in set(old) | set(new) if old.get(s, "n") != new.get(s, "n")}


def changed_files(old: Mapping[str, str], new: Mapping[str, str]) -> Set[str]:
    return {p for p in set(old) | set(new) if old.get(p) != new.get(p)}


def lower_bound(
    before: Mapping[str, object],
    changed: Iterable[str],
    after_objects: Iterable[str],
    changed_generated: Iterable[str] = (),
    changed_command: Iterable[str] = (),
) -> Set[str]:
    """Objects any correct incremental build must compile (see the module docstring).

    `before` maps objects to their dependency sets as of before the build: either a set of
    symbols (`object_symbols`) or a (symbols, generated headers) pair (`object_deps`);
    `changed_command` names the objects whose compile command changed (`changed_commands`)."""
    changed, after_objects = set(changed), list(after_objects)
    gen = set(changed_generated)
    need = set()
    for obj, deps in before.items():
        syms, headers = deps if isinstance(deps, tuple) else (deps, set())
        if syms & changed or headers & gen:
            need.add(obj)
    need |= {obj for obj in after_objects if obj not in before}
    need |= set(changed_command) & set(after_objects)
    need |= {obj for obj in after_objects if obj.startswith(IMAGE_ASSEMBLY_PREFIX)}
    if changed:
        need |= {o for o in (*after_objects, *before) if o == EMBEDDED_CONFIG}
    for obj in after_objects:  # the vDSO embedded as C: regenerated when the vDSO is relinked
        vdso_dir, name = os.path.split(obj)
        if name.startswith(VDSO_IMAGE_PREFIX) and any(
            os.path.dirname(o) == vdso_dir and not os.path.basename(o).startswith(VDSO_IMAGE_PREFIX)
            for o in need
        ):
            need.add(obj)
    return need
