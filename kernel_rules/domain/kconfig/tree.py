"""Load the kernel's real Kconfig tree with kconfiglib (Linux >= 5.13 included).

kconfiglib 14.1.0 predates Linux 5.13, whose `kernel/module/Kconfig` (or `init/Kconfig`) marks the
modules symbol with a bare `modules` line instead of `option modules`. `LinuxKconfig` rewrites that
one line while reading, and nothing else.

Kconfig evaluates `$(shell,...)` macros (compiler, assembler and linker probes) and reads values
that Kbuild passes in the environment (`CC_VERSION_TEXT`, `srctree`, `SRCARCH`, ...).
`kbuild_environment()` builds that environment the way the top-level Makefile does, so that
kconfiglib sees the same symbol values as the kernel's own `conf`.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from typing import Dict, Mapping

_BARE_MODULES = re.compile(r"^([ \t]*)modules[ \t]*$", re.M)


def _kconfiglib():
    import kconfiglib  # imported lazily: the module is shipped into process sandboxes

    return kconfiglib


def kbuild_environment(srctree: str, arch: str, base_env: Mapping[str, str]) -> Dict[str, str]:
    """The environment Kbuild gives Kconfig for `ARCH=arch` (x86_64/i386 -> SRCARCH x86)."""
    srcarch = "x86" if arch in ("x86_64", "i386", "x86") else arch
    env = dict(base_env)
    cc = env.get("CC", "gcc")
    first_line = subprocess.run(
        [cc, "--version"], capture_output=True, text=True, env=env, check=True
    ).stdout.splitlines()[0]
    with open(os.path.join(srctree, "Makefile")) as mk:
        head = dict(
            re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION) = ?(.*)$", mk.read(), re.M)
        )
    kernelversion = "{}.{}.{}{}".format(
        head["VERSION"], head["PATCHLEVEL"], head["SUBLEVEL"], head.get("EXTRAVERSION", "")
    )
    env.update(
        srctree=srctree,
        ARCH=arch,
        SRCARCH=srcarch,
        CC=cc,
        LD=env.get("LD", "ld"),
        AR=env.get("AR", "ar"),
        NM=env.get("NM", "nm"),
        OBJCOPY=env.get("OBJCOPY", "objcopy"),
        HOSTCC=env.get("HOSTCC", "gcc"),
        HOSTCXX=env.get("HOSTCXX", "g++"),
        PAHOLE=env.get("PAHOLE", "pahole"),
        RUSTC="rustc",
        BINDGEN="bindgen",
        CC_VERSION_TEXT=first_line,
        KERNELVERSION=kernelversion,
    )
    return env


def load_kconfig(srctree: str, arch: str, env: Mapping[str, str]):
    """Parse `srctree`'s Kconfig for `arch`; returns a kconfiglib.Kconfig. Changes the cwd and
    os.environ for the duration of the parse, as kconfiglib requires, and restores both."""
    kconfiglib = _kconfiglib()

    class LinuxKconfig(kconfiglib.Kconfig):
        def _open(self, filename, mode):
            if mode != "r":
                return super()._open(filename, mode)
            with open(filename, encoding=self._encoding) as f:
                text = f.read()
            return io.StringIO(_BARE_MODULES.sub(r"\1option modules", text))

    kbuild_env = kbuild_environment(srctree, arch, env)
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(kbuild_env)
    os.chdir(srctree)
    try:
        return LinuxKconfig("Kconfig", warn=False, warn_to_stderr=False)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
