"""The files of a guest image (a gzip-compressed `newc` cpio archive, domain.guest.initramfs).

`read_image(bytes)` gives path -> (mode, data); `Image.resolve(path)` follows symlinks inside the
image (an absolute link target is a path in the image, never on the host); `Image.find_library`
searches a DT_NEEDED name as the glibc loader would, in the image's directories.
"""

from __future__ import annotations

import gzip
import posixpath
import stat
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

LIBRARY_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)


class BadImage(Exception):
    pass


def read_cpio(data: bytes) -> Dict[str, Tuple[int, bytes]]:
    """path (absolute, normalised) -> (mode, data); a symlink's data is its target."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    out: Dict[str, Tuple[int, bytes]] = {}
    pos = 0
    while pos + 110 <= len(data):
        if data[pos : pos + 6] not in (b"070701", b"070702"):
            raise BadImage(f"not a newc cpio archive at byte {pos}")
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = data[name_start : name_start + namesize - 1].decode(errors="replace")
        body = name_start + namesize
        body += (4 - body % 4) % 4
        if name == "TRAILER!!!":
            break
        out["/" + posixpath.normpath(name).lstrip("/")] = (mode, data[body : body + size])
        pos = body + size
        pos += (4 - pos % 4) % 4
    return out


@dataclass
class Image:
    files: Dict[str, Tuple[int, bytes]]

    def resolve(self, path: str, depth: int = 0) -> Optional[str]:
        """The regular file `path` names, through symlinks (also in parent directories)."""
        if depth > 40:
            return None
        path = posixpath.normpath(path)
        parts = path.strip("/").split("/")
        cur = "/"
        for i, part in enumerate(parts):
            cur = posixpath.join(cur, part)
            entry = self.files.get(cur)
            if entry is None:
                if i == len(parts) - 1:
                    return None
                continue  # a directory without its own archive entry
            if stat.S_ISLNK(entry[0]):
                target = entry[1].decode(errors="replace")
                base = (
                    target
                    if target.startswith("/")
                    else posixpath.join(posixpath.dirname(cur), target)
                )
                rest = "/".join(parts[i + 1 :])
                return self.resolve(posixpath.join(base, rest) if rest else base, depth + 1)
        entry = self.files.get(cur)
        return cur if entry is not None and stat.S_ISREG(entry[0]) else None

    def data(self, path: str) -> bytes:
        return self.files[path][1]

    def executables(self) -> List[str]:
        return sorted(
            p
            for p, (mode, data) in self.files.items()
            if stat.S_ISREG(mode) and mode & 0o111 and data[:4] == b"\x7fELF"
        )

    def find_library(self, name: str, runpath: Iterable[str], origin: str) -> Optional[str]:
        if "/" in name:
            return self.resolve(name if name.startswith("/") else posixpath.join(origin, name))
        for d in [*(p.replace("$ORIGIN", origin) for p in runpath), *LIBRARY_DIRS]:
            found = self.resolve(posixpath.join(d, name))
            if found:
                return found
        return None
