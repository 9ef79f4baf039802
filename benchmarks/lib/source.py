"""The pinned kernel source and Debian packages: lock files (read as third_party/pins.py, which
moves the pins, reads them), sha256 check, unpacked tree."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, Tuple

from benchmarks.lib import REPO
from kernel_rules.domain.build.warm_trees import unpack_source
from third_party import pins
from third_party.pins import sha256_file

SOURCE_LOCK = REPO / "third_party/linux/linux-source.lock"
CLOUD_LOCK = REPO / "third_party/debian/cloud-kernel.lock"
DEB_DIR = REPO / "third_party/debian/debs"


def read_lock(path: Path) -> Dict[str, str]:
    """A `key=value` lock file (third_party/*/*.lock)."""
    return pins.read_lock(path.read_text())


def named_cache() -> Path:
    """Pants' named cache `kernel_rules`, where the rules unpack sources and keep warm trees."""
    root = os.environ.get("PANTS_NAMED_CACHES_DIR") or os.path.expanduser(
        "~/.cache/pants/named_caches"
    )
    return Path(root) / "kernel_rules"


def pinned_tarball() -> Tuple[Path, str]:
    """(tarball, sha256) of the pinned source, checked against the lock. (The product checks the
    pin in its Pants rule, rules/source.py, on the file digest Pants has; a benchmark that
    unpacks the tarball itself checks it here.)"""
    lock = read_lock(SOURCE_LOCK)
    tarball = REPO / "third_party/linux" / Path(lock["path_in_package"]).name
    if not tarball.exists():
        sys.exit(
            f"{tarball} is missing: run ./pants --version first (it sets up the pinned tarball)"
        )
    got = sha256_file(tarball)
    if got != lock["sha256"]:
        sys.exit(f"{tarball}: sha256 {got}, the lock says {lock['sha256']}")
    return tarball, lock["sha256"]


def source_tree() -> str:
    """The unpacked pinned source, unpacked once per sha256 by the product into the named cache."""
    tarball, sha256 = pinned_tarball()
    return unpack_source(str(named_cache()), str(tarball), sha256)


def cloud_debs() -> Tuple[Path, Path, Dict[str, str]]:
    """(image .deb, debug .deb, lock) of the pinned Debian cloud kernel, checked against the lock."""
    lock = read_lock(CLOUD_LOCK)
    image = DEB_DIR / f"{lock['image_package']}_{lock['version']}_amd64.deb"
    debug = DEB_DIR / f"{lock['debug_package']}_{lock['version']}_amd64.deb"
    for deb, key in ((image, "image_sha256"), (debug, "debug_sha256")):
        if not deb.exists():
            sys.exit(f"{deb} is missing: run `third_party/setup.sh --debian-cloud`")
        got = sha256_file(deb)
        if got != lock[key]:
            sys.exit(f"{deb}: sha256 {got}, {CLOUD_LOCK.name} says {lock[key]}")
    return image, debug, lock
