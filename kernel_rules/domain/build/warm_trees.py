"""A cache of unpacked kernel sources and warm Kbuild output trees, safe to share.

Layout under the cache root (a Pants named cache, outside every sandbox):

    sources/<sha256>/<top-dir>/     the pinned tarball, unpacked once (`.complete` marks success)
    sources/<sha256>.lock
    <pool>/<sha256[:16]>/<n>/       a Kbuild `O=` tree built from that source
    <pool>/<sha256[:16]>/<n>.lock

Guarantees:
- **Unpacked once, never half.** `unpack_once()` fills a temporary directory and renames it into
  place only when complete; a failed unpack (a bad archive, a full disk) removes its temporary
  directory, and leftovers of a killed one are removed by the next unpack of the same entry.
- **Unused entries are evicted.** A process that uses an unpacked entry holds a shared `flock` on
  it until it exits. After a new entry is unpacked, the least recently used entries beyond `keep`
  that no process holds are deleted (`keep` counts the new one), and with a source its warm trees (old pins' sources and
  trees do not pile up).
- **Exclusive use.** A tree is used only while its `flock` is held; the kernel drops the lock when
  the holder dies, so a killed build never leaves a tree locked.
- **Interrupted builds are repaired.** `.kr-building` is written before a build and removed after
  it succeeds. A tree that still has it was interrupted: every file modified since the marker
  (possibly half written) is deleted, and Kbuild rebuilds exactly those.
- **Cheapest tree first.** Given `BuildCosts` (what Kbuild would compile in a tree, from its
  dependency files, and in a new tree), `acquire()` takes the cheapest of: a free tree, a new tree
  (up to `max_trees`), or waiting for a busy tree, costed from the configuration being built in
  it (the time spent waiting is not counted: a second build in parallel would share the same
  cores, so the work a choice adds is what delays the batch). Ties go to a free tree, then a new
  one. Without costs (or where none is known) it takes the free tree whose last successful
  `.config` differs from the new one in the fewest symbols, else a new tree, else waits for the
  closest busy one. The least recently used trees beyond `max_trees` are deleted.

Correctness never depends on this cache: an empty cache gives a cold build of the same bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from kernel_rules.domain.kconfig.fragments import config_distance, parse_config

LAST_CONFIG = ".kr-last-config"
BUILDING = ".kr-building"


def log(msg: str) -> None:
    print(f"kernel_rules: {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def locked(path: str, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on `path` (created if needed); yields False if non-blocking and busy."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


SOURCES_KEPT = 2  # unpacked sources kept (the most recently used; 1.5 GB each)
_HELD: Dict[str, int] = {}  # entry path -> fd of the shared lock this process holds on it


def unpack_once(
    base: str,
    key: str,
    fill: Callable[[str], None],
    keep: int,
    on_evict: Callable[[str], None] = lambda key: None,
) -> str:
    """`base/key`, made once by `fill(tmpdir)` (see the module docstring). The calling process
    holds a shared lock on the entry until it exits, so no other process evicts it meanwhile."""
    final = os.path.join(base, key)
    if final in _HELD:
        return final
    os.makedirs(base, exist_ok=True)
    fd = os.open(final + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    made = False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # users of a complete entry share it
        if not os.path.exists(os.path.join(final, ".complete")):
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits for other users; then check again
        if not os.path.exists(os.path.join(final, ".complete")):
            shutil.rmtree(final, ignore_errors=True)
            for stale in os.listdir(base):  # from an unpacker that was killed: we hold the lock
                if stale.startswith(f".{key[:12]}-"):
                    shutil.rmtree(os.path.join(base, stale), ignore_errors=True)
            tmp = tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=base)
            try:
                fill(tmp)
                with open(os.path.join(tmp, ".complete"), "w"):
                    pass
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            made = True
        os.utime(final + ".lock")  # recency, for eviction
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    _HELD[final] = fd
    if made:
        evict_unused(base, keep, on_evict)
    return final


def evict_unused(
    base: str, keep: int, on_evict: Callable[[str], None] = lambda key: None
) -> List[str]:
    """Delete the least recently used entries of `base` beyond the `keep` newest that no process
    holds; returns the evicted keys."""
    entries = sorted(
        (
            e[: -len(".lock")]
            for e in os.listdir(base)
            if e.endswith(".lock") and not e.startswith(".")
        ),
        key=lambda k: os.stat(os.path.join(base, k + ".lock")).st_mtime_ns,
        reverse=True,
    )
    evicted = []
    for key in entries[keep:]:
        path = os.path.join(base, key)
        if path in _HELD:
            continue
        with locked(path + ".lock", blocking=False) as free:
            if not free:
                continue
            log(f"evicting {os.path.basename(base)}/{key[:16]}... (not used recently)")
            shutil.rmtree(path, ignore_errors=True)
            on_evict(key)
            os.unlink(path + ".lock")
            evicted.append(key)
    return evicted


def unpack_source(cache_root: str, tarball: str, sha256: str, tar: str = "tar") -> str:
    """Return the unpacked source tree of `tarball`, unpacking it once per sha256."""

    def fill(tmp: str) -> None:
        log(f"unpacking kernel source {os.path.basename(tarball)} (once per sha256)")
        proc = subprocess.run(
            [tar, "-xf", os.path.abspath(tarball), "-C", tmp], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"unpacking {tarball} failed: {proc.stderr.strip()[-1000:]}")

    def drop_trees(key: str) -> None:
        for pool in ("trees", "conf"):
            TreePool.delete_all(cache_root, pool, key)

    final = unpack_once(os.path.join(cache_root, "sources"), sha256, fill, SOURCES_KEPT, drop_trees)
    tops = [d for d in os.listdir(final) if os.path.isdir(os.path.join(final, d))]
    if len(tops) != 1 or not os.path.exists(os.path.join(final, tops[0], "Makefile")):
        raise RuntimeError(f"{tarball}: expected one top-level kernel source directory, got {tops}")
    return os.path.realpath(os.path.join(final, tops[0]))


@dataclass(frozen=True)
class BuildCosts:
    """What a build of one configuration would compile: `in_tree(path, tree_config, busy)` for a
    tree that holds `tree_config` (or, `busy`, is building it now), None when it cannot tell;
    `cold` for a new tree, None when unknown. Objects, the unit of Kbuild's work."""

    in_tree: Callable[[str, Mapping[str, str], bool], Optional[int]]
    cold: Optional[int]


@dataclass(frozen=True)
class WarmTree:
    path: str
    distance: Optional[int]  # symbols differing from its last config; None for a new tree
    recovered: bool  # an interrupted build was repaired
    estimate: Optional[int] = None  # objects the choice was costed at (BuildCosts), if known
    waited: bool = False  # the tree was busy and waiting for it was the cheapest choice
    # every option the choice weighed: ("free" | "new" | "busy", tree name or None, objects or None)
    options: Tuple[Tuple[str, Optional[str], Optional[int]], ...] = ()

    def last_config(self) -> Dict[str, str]:
        return _read_config(os.path.join(self.path, LAST_CONFIG))

    def begin_build(self) -> None:
        with open(os.path.join(self.path, BUILDING), "w") as f:
            f.write("interrupted builds leave this file behind\n")

    def finish_build(self, config_text: str) -> None:
        tmp = os.path.join(self.path, LAST_CONFIG + ".tmp")
        with open(tmp, "w") as f:
            f.write(config_text)
        os.replace(tmp, os.path.join(self.path, LAST_CONFIG))
        os.unlink(os.path.join(self.path, BUILDING))


def _inf(cost: Optional[int]) -> float:
    return float("inf") if cost is None else float(cost)


def _read_config(path: str) -> Dict[str, str]:
    try:
        with open(path) as f:
            return parse_config(f.read(), path)
    except (OSError, ValueError):
        return {}


def repair_interrupted(tree: str) -> bool:
    """Delete every file written since an interrupted build began; True if there was one."""
    marker = os.path.join(tree, BUILDING)
    try:
        since = os.stat(marker).st_mtime_ns
    except FileNotFoundError:
        return False
    removed = 0
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            p = os.path.join(dirpath, name)
            try:
                if os.lstat(p).st_mtime_ns >= since:
                    os.unlink(p)
                    removed += 1
            except FileNotFoundError:
                pass
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(tree, LAST_CONFIG))
    log(f"repaired interrupted build in {os.path.basename(tree)}: removed {removed} files")
    return True


class TreePool:
    """The warm trees of one pool (`trees` for builds, `conf` for configuration) and source."""

    def __init__(self, cache_root: str, pool: str, sha256: str, max_trees: int = 3) -> None:
        self.dir = os.path.join(cache_root, pool, sha256[:16])
        self.max_trees = max(1, max_trees)
        os.makedirs(self.dir, exist_ok=True)

    def _trees(self) -> List[str]:
        return sorted((d for d in os.listdir(self.dir) if d.isdigit()), key=int)

    def _ranked(self, config: Mapping[str, str]) -> List[Tuple[float, str]]:
        ranked = []
        for name in self._trees():
            last = _read_config(os.path.join(self.dir, name, LAST_CONFIG))
            dist = config_distance(last, config) if last else float("inf")
            ranked.append((dist, name))
        return sorted(ranked, key=lambda t: (t[0], int(t[1])))

    @contextlib.contextmanager
    def acquire(
        self, config: Mapping[str, str], costs: Optional[BuildCosts] = None
    ) -> Iterator[WarmTree]:
        """Lock and yield the cheapest tree for `config` (see the module docstring)."""
        with contextlib.ExitStack() as stack:
            ranked = self._ranked(config)
            free: Dict[str, contextlib.ExitStack] = {}
            for _dist, name in ranked:
                held = contextlib.ExitStack()
                if held.enter_context(locked(self._lock(name), blocking=False)):
                    free[name] = held
                else:
                    held.close()
            kind, name, estimate, options = self._choose(ranked, free, costs)
            for other, held in free.items():
                if other == name:
                    stack.enter_context(held)
                else:
                    held.close()
            if kind == "new":
                name = self._new_tree()
                stack.enter_context(locked(self._lock(name)))
            elif kind == "busy":
                log(
                    f"tree {name} is busy; waiting for it"
                    + (
                        f" (about {estimate} objects to compile there after it, against "
                        f"{costs.cold} in a new tree)"
                        if costs is not None and estimate is not None
                        else f" (all {len(ranked)} warm trees are busy)"
                    )
                )
                stack.enter_context(locked(self._lock(name)))
            # Read again now that the tree is held: a tree waited for has a newer configuration.
            last = _read_config(os.path.join(self.dir, name, LAST_CONFIG))
            dist = config_distance(last, config) if last else float("inf")
            path = os.path.realpath(os.path.join(self.dir, name))
            recovered = repair_interrupted(path)
            now = time.time_ns()  # explicit: file timestamps are only jiffy-precise
            os.utime(self._lock(name), ns=(now, now))  # recency for eviction
            dist = None if dist == float("inf") or recovered or kind == "new" else int(dist)
            yield WarmTree(path, dist, recovered, estimate, kind == "busy", options)
        self._evict()

    def _choose(
        self,
        ranked: List[Tuple[float, str]],
        free: Mapping[str, object],
        costs: Optional[BuildCosts],
    ) -> Tuple[
        str, Optional[str], Optional[int], Tuple[Tuple[str, Optional[str], Optional[int]], ...]
    ]:
        """("free" | "new" | "busy", tree name (None for new), estimated objects or None, and
        every option weighed as (kind, name, estimate))."""
        # (cost, preference: free < new < busy, closeness by symbols, kind, name, estimate)
        options: List[Tuple[float, int, int, str, Optional[str], Optional[int]]] = []
        for order, (_dist, name) in enumerate(ranked):
            busy = name not in free
            # a busy tree is costed from the configuration its running build wrote first thing
            tree_config = _read_config(
                os.path.join(self.dir, name, ".config" if busy else LAST_CONFIG)
            )
            cost = None
            if costs is not None and tree_config:
                with contextlib.suppress(OSError, ValueError):
                    cost = costs.in_tree(os.path.join(self.dir, name), tree_config, busy)
            if not busy:
                options.append((_inf(cost), 0, order, "free", name, cost))
            elif cost is not None:
                options.append((cost, 2, order, "busy", name, cost))
        if len(ranked) < self.max_trees:
            cold = costs.cold if costs is not None else None
            options.append((_inf(cold), 1, 0, "new", None, cold))
        weighed = tuple((kind, name, cost) for _, _, _, kind, name, cost in sorted(options))
        if options:
            _, _, _, kind, name, estimate = min(options)
            return kind, name, estimate, weighed
        return "busy", ranked[0][1], None, weighed  # every tree busy, none costed: the closest

    def last_builds(self) -> List[str]:
        """The pool's tree paths, most recently used first."""
        names = self._trees()
        with contextlib.suppress(OSError):
            names.sort(key=lambda n: os.stat(self._lock(n)).st_mtime_ns, reverse=True)
        return [os.path.join(self.dir, n) for n in names]

    def _lock(self, name: str) -> str:
        return os.path.join(self.dir, name + ".lock")

    def _new_tree(self) -> str:
        n = 0
        while True:
            try:
                os.mkdir(os.path.join(self.dir, str(n)))
                return str(n)
            except FileExistsError:
                n += 1

    @staticmethod
    def delete_all(cache_root: str, pool: str, sha256: str) -> None:
        """Delete every tree of `pool` built from `sha256` that is not in use."""
        pool_dir = os.path.join(cache_root, pool, sha256[:16])
        if not os.path.isdir(pool_dir):
            return
        for name in os.listdir(pool_dir):
            if name.isdigit():
                with locked(os.path.join(pool_dir, name + ".lock"), blocking=False) as free:
                    if free:
                        shutil.rmtree(os.path.join(pool_dir, name), ignore_errors=True)
        with contextlib.suppress(OSError):
            if not any(n.isdigit() for n in os.listdir(pool_dir)):
                shutil.rmtree(pool_dir)

    def _evict(self) -> None:
        names = self._trees()
        if len(names) <= self.max_trees:
            return
        by_age = sorted(names, key=lambda n: os.stat(self._lock(n)).st_mtime_ns)
        for name in by_age[: len(names) - self.max_trees]:
            with locked(self._lock(name), blocking=False) as free:
                if free:
                    shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)
