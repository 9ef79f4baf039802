"""Deterministic initramfs images: a gzip-compressed `newc` cpio archive.

The same entries give the same bytes: entries are sorted by path, every timestamp is 0, every
owner is root, inode numbers are assigned in order, and gzip carries no name and no mtime.

`busybox_initramfs()` lays out the minimal image every kernel_rules guest starts from: a static
busybox with a symlink per applet, `/dev/console`, the usual mount points, and an `/init`.
With `--marker-source` (window_marker.c) the image also holds the marker programs of
`protocol.MARKER_PROGRAMS`, each a jump to its fixed user address (see domain.guest.protocol).

Run as `python3 -m kernel_rules.domain.guest.initramfs --busybox PATH --init FILE --out FILE`.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

from kernel_rules.domain.guest.protocol import MARKER_PROGRAMS, marker_define

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
    fields = [
        ino,
        e.mode,
        0,
        0,
        2 if stat.S_ISDIR(e.mode) else 1,
        0,
        len(e.data),
        0,
        0,
        e.rdev[0],
        e.rdev[1],
        len(name) + 1,
        0,
    ]
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
    hdr = b"070701" + b"".join(
        b"%08X" % f for f in [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(trailer) + 1, 0]
    )
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
        if int.from_bytes(data[off : off + 4], order) == 3:  # PT_INTERP
            return False
    return True


def busybox_applets(busybox: str) -> List[str]:
    out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    return sorted(a for a in out.split() if a and "/" not in a)


def busybox_initramfs(
    busybox_data: bytes,
    applets: Sequence[str],
    init: bytes,
    extra: Optional[Iterable[Entry]] = None,
) -> List[Entry]:
    """Entries of the minimal image: dirs, /bin/busybox + applet links, /dev/console, /init."""
    if not is_static_elf(busybox_data):
        raise ValueError("busybox is not a static 64-bit ELF executable (install busybox-static)")
    entries = [directory(d) for d in DIRS]
    entries.append(regular("bin/busybox", busybox_data, executable=True))
    entries += [symlink(f"bin/{a}", "busybox") for a in applets if a != "busybox"]
    entries.append(char_device("dev/console", 5, 1))
    entries.append(regular("init", init, executable=True))
    return entries + list(extra or ())


def _parents(path: str) -> List[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def host_file_entries(paths: Iterable[str]) -> List[Entry]:
    """Host files at the same paths in the guest; a symlink stays a symlink (its target is
    expected among `paths` too, as `elfdeps.closure` returns both)."""
    entries: List[Entry] = []
    for path in paths:
        rel = path.strip("/")
        if os.path.islink(path):
            target = os.readlink(path)
            entries.append(symlink(rel, target))
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
            entries += host_file_entries([resolved])
            continue
        with open(path, "rb") as f:
            entries.append(regular(rel, f.read(), executable=os.access(path, os.X_OK)))
    return entries


def with_parent_dirs(entries: Iterable[Entry]) -> List[Entry]:
    """`entries` plus a directory entry for every parent directory, without duplicates."""
    by_path: Dict[str, Entry] = {}
    for e in entries:
        by_path.setdefault(e.path.strip("/"), e)
    for p in list(by_path):
        for parent in _parents(p):
            by_path.setdefault(parent, directory(parent))
    return list(by_path.values())


def compile_static(
    gcc: str, source: str, out: str, defines: Sequence[str] = (), nostdlib: bool = False
) -> bytes:
    argv = [
        gcc,
        "-static",
        "-O2",
        "-Wall",
        *(f"-D{d}" for d in defines),
        *(["-nostdlib"] if nostdlib else []),
        "-o",
        out,
        source,
    ]
    subprocess.run(argv, check=True)
    with open(out, "rb") as f:
        return f.read()


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="initramfs", description=__doc__.splitlines()[0])
    p.add_argument("--busybox", required=True)
    p.add_argument("--init", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--binary", action="append", default=[], help="host program (+ its libraries)")
    p.add_argument("--program", action="append", default=[], help="C source -> /usr/bin/<stem>")
    p.add_argument(
        "--file",
        action="append",
        nargs=2,
        default=[],
        metavar=("SRC", "DEST"),
        help="a file and its path in the guest (two arguments: any name, `=` too)",
    )
    p.add_argument(
        "--tree",
        action="append",
        default=[],
        help="a directory whose files go into the image at the same relative paths",
    )
    p.add_argument(
        "--marker-source",
        help="window_marker.c: adds the marker programs "
        "(/bin/kr-userspace-begin, /bin/kr-window-{begin,end})",
    )
    p.add_argument("--gcc", default="gcc")
    args = p.parse_args(argv)
    with open(args.busybox, "rb") as f:
        busybox = f.read()
    with open(args.init, "rb") as f:
        init = f.read()
    extra: List[Entry] = []
    try:
        if args.binary:
            from kernel_rules.domain.guest.elfdeps import closure

            extra += host_file_entries(closure(args.binary))
        for src in args.program:
            stem = os.path.splitext(os.path.basename(src))[0]
            extra.append(
                regular(
                    f"usr/bin/{stem}", compile_static(args.gcc, src, f"{stem}.bin"), executable=True
                )
            )
        if args.marker_source:
            for path, address in MARKER_PROGRAMS:
                data = compile_static(
                    args.gcc,
                    args.marker_source,
                    os.path.basename(path),
                    [marker_define(address)],
                    nostdlib=True,
                )
                extra.append(regular(path.lstrip("/"), data, executable=True))
        for tree in args.tree:
            for dirpath, dirs, names in os.walk(tree):
                dirs.sort()
                for name in sorted(names):
                    src = os.path.join(dirpath, name)
                    with open(src, "rb") as f:
                        extra.append(regular(os.path.relpath(src, tree), f.read()))
        for src, dest in args.file:
            with open(src, "rb") as f:
                extra.append(regular(dest.strip("/"), f.read(), executable=os.access(src, os.X_OK)))
        entries = busybox_initramfs(busybox, busybox_applets(args.busybox), init, extra)
        entries = with_parent_dirs(entries)
    except (ValueError, OSError, subprocess.CalledProcessError) as e:
        print(f"kernel_rules: initramfs: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # MissingLibrary, NotAnElf from elfdeps
        print(f"kernel_rules: initramfs: {e}", file=sys.stderr)
        return 2
    with open(args.out, "wb") as f:
        f.write(gzip_deterministic(cpio_newc(entries)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
