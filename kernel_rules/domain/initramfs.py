"""Deterministic initramfs images: a gzip-compressed `newc` cpio archive.

The same entries give the same bytes: entries are sorted by path, every timestamp is 0, every
owner is root, inode numbers are assigned in order, and gzip carries no name and no mtime.

`busybox_initramfs()` lays out the minimal image every kernel_rules guest starts from: a static
busybox with a symlink per applet, `/dev/console`, the usual mount points, and an `/init`.

Run as `python3 -m kernel_rules.domain.initramfs --busybox PATH --init FILE --out FILE`.
"""

from __future__ import annotations

import argparse
import gzip
import io
import stat
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

DIRS = ("bin", "dev", "etc", "proc", "root", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin")


@dataclass(frozen=True)
class Entry:
    """One archive member. `mode` includes the file type bits (stat.S_IFREG | 0o755, ...)."""

    path: str  # relative, no leading slash
    mode: int
    data: bytes = b""
    rdev: tuple = (0, 0)  # (major, minor) for device nodes


def regular(path: str, data: bytes, executable: bool = False) -> Entry:
    return Entry(path, stat.S_IFREG | (0o755 if executable else 0o644), data)


def directory(path: str) -> Entry:
    return Entry(path, stat.S_IFDIR | 0o755)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def char_device(path: str, major: int, minor: int) -> Entry:
    return Entry(path, stat.S_IFCHR | 0o600, b"", (major, minor))


def _header(ino: int, e: Entry, name: bytes) -> bytes:
    fields = [ino, e.mode, 0, 0, 2 if stat.S_ISDIR(e.mode) else 1, 0, len(e.data),
              0, 0, e.rdev[0], e.rdev[1], len(name) + 1, 0]
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def _pad(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


def cpio_newc(entries: Iterable[Entry]) -> bytes:
    """The uncompressed newc archive of `entries` (sorted by path; duplicates are an error)."""
    by_path: Dict[str, Entry] = {}
    for e in entries:
        p = e.path.strip("/")
        if p in by_path:
            raise ValueError(f"initramfs: two entries for /{p}")
        by_path[p] = e
    out = io.BytesIO()
    for ino, p in enumerate(sorted(by_path), start=1):
        e = by_path[p]
        name = p.encode()
        hdr = _header(ino, e, name)
        out.write(hdr + name + b"\0")
        out.write(_pad(len(hdr) + len(name) + 1))
        out.write(e.data + _pad(len(e.data)))
    trailer = b"TRAILER!!!"
    hdr = b"070701" + b"".join(b"%08X" % f for f in [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                                                     len(trailer) + 1, 0])
    out.write(hdr + trailer + b"\0" + _pad(len(hdr) + len(trailer) + 1))
    return out.getvalue()


def gzip_deterministic(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def is_static_elf(data: bytes) -> bool:
    """True for an ELF executable without a PT_INTERP program header (statically linked)."""
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only
        return False
    little = data[5] == 1
    order = "little" if little else "big"
    phoff = int.from_bytes(data[32:40], order)
    phentsize = int.from_bytes(data[54:56], order)
    phnum = int.from_bytes(data[56:58], order)
    for i in range(phnum):
        off = phoff + i * phentsize
        if int.from_bytes(data[off:off + 4], order) == 3:  # PT_INTERP
            return False
    return True


def busybox_applets(busybox: str) -> List[str]:
    out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    return sorted(a for a in out.split() if a and "/" not in a)


def busybox_initramfs(busybox_data: bytes, applets: Sequence[str], init: bytes,
                      extra: Optional[Iterable[Entry]] = None) -> List[Entry]:
    """Entries of the minimal image: dirs, /bin/busybox + applet links, /dev/console, /init."""
    if not is_static_elf(busybox_data):
        raise ValueError("busybox is not a static 64-bit ELF executable (install busybox-static)")
    entries = [directory(d) for d in DIRS]
    entries.append(regular("bin/busybox", busybox_data, executable=True))
    entries += [symlink(f"bin/{a}", "busybox") for a in applets if a != "busybox"]
    entries.append(char_device("dev/console", 5, 1))
    entries.append(regular("init", init, executable=True))
    return entries + list(extra or ())


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="initramfs", description=__doc__.splitlines()[0])
    p.add_argument("--busybox", required=True)
    p.add_argument("--init", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    with open(args.busybox, "rb") as f:
        busybox = f.read()
    with open(args.init, "rb") as f:
        init = f.read()
    try:
        entries = busybox_initramfs(busybox, busybox_applets(args.busybox), init)
    except ValueError as e:
        print(f"{args.busybox}: {e}", file=sys.stderr)
        return 2
    with open(args.out, "wb") as f:
        f.write(gzip_deterministic(cpio_newc(entries)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
