"""Find the host tools a kernel build needs and fingerprint them.

`probe(search_path)` looks every required tool up on an explicit search path (never the caller's
PATH), reports the missing ones with the Debian package that provides each, and returns a
fingerprint: the version banners of the compiler, binutils and make plus the sha256 of every tool
binary. The fingerprint goes into the cache key of every build, so a toolchain upgrade rebuilds.

Run as `python3 -m kernel_rules.domain.build.toolchain SEARCH_PATH [TOOL...]`; prints JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from typing import Dict, Iterable, List

# tool -> Debian package that provides it
KBUILD_TOOLS: Dict[str, str] = {
    "make": "make",
    "gcc": "gcc",
    "ld": "binutils",
    "as": "binutils",
    "ar": "binutils",
    "nm": "binutils",
    "objcopy": "binutils",
    "objdump": "binutils",
    "readelf": "binutils",
    "strip": "binutils",
    "size": "binutils",
    "flex": "flex",
    "bison": "bison",
    "bc": "bc",
    "perl": "perl",
    "sh": "dash",
    "bash": "bash",
    "awk": "mawk",
    "sed": "sed",
    "grep": "grep",
    "find": "findutils",
    "xargs": "findutils",
    "tar": "tar",
    "xz": "xz-utils",
    "gzip": "gzip",
    "cpio": "cpio",
    "python3": "python3",
    "cmp": "diffutils",
}
QEMU_TOOLS: Dict[str, str] = {"qemu-system-x86_64": "qemu-system-x86"}
INITRAMFS_TOOLS: Dict[str, str] = {"busybox": "busybox-static"}
PACKAGE_TOOLS: Dict[str, str] = {"dpkg-deb": "dpkg", "addr2line": "binutils"}
OBJECT_CACHE_TOOLS: Dict[str, str] = {"ccache": "ccache"}  # with [kernel-build].object_cache
ALL_TOOLS: Dict[str, str] = {
    **KBUILD_TOOLS,
    **QEMU_TOOLS,
    **INITRAMFS_TOOLS,
    **PACKAGE_TOOLS,
    **OBJECT_CACHE_TOOLS,
}
# header -> package, needed to build the host tools (objtool needs libelf)
KBUILD_HEADERS: Dict[str, str] = {"libelf.h": "libelf-dev", "gelf.h": "libelf-dev"}
VERSIONED = ("gcc", "ld", "as", "make", "flex", "bison", "qemu-system-x86_64", "busybox", "ccache")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version(path: str, tool: str) -> str:
    args = [path] if tool == "busybox" else [path, "--version"]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return f"unavailable: {e}"
    return out.splitlines()[0] if out else ""


def probe(search_path: str, tools: Iterable[str], include_dirs: Iterable[str] = ()) -> dict:
    """{"paths", "missing": [{"tool", "package"}], "fingerprint": {tool: version/sha256}}."""
    paths, missing, fingerprint = {}, [], {}
    for tool in tools:
        found = shutil.which(tool, path=search_path)
        if not found:
            missing.append({"tool": tool, "package": ALL_TOOLS.get(tool, tool)})
            continue
        paths[tool] = found
        real = os.path.realpath(found)
        entry = {"sha256": _sha256(real)}
        if tool in VERSIONED:
            entry["version"] = _version(found, tool)
        fingerprint[tool] = entry
    for header, package in KBUILD_HEADERS.items() if include_dirs else ():
        if not any(os.path.exists(os.path.join(d, header)) for d in include_dirs):
            missing.append({"tool": f"<{header}>", "package": package})
    return {"paths": paths, "missing": missing, "fingerprint": fingerprint}


def main(argv: List[str]) -> int:
    search_path, tools = argv[0], argv[1:]
    kbuild = any(t in KBUILD_TOOLS for t in tools)
    result = probe(search_path, tools, ["/usr/include"] if kbuild else ())
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
