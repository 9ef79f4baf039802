"""A shared object cache for Kbuild builds: ccache with a remote storage (Redis, HTTP, a directory).

A fresh CI runner has no warm tree, so every kernel is a full Kbuild build there. With the object
cache on, every compiler call of a build goes through ccache, whose key is the preprocessed source
and the compiler's arguments: a configuration change misses only where it changes what an object
compiles, so a runner reuses the objects another runner compiled for another configuration.

Contract:
- `url_problem(url)` says what is wrong with a `[kernel-build].object_cache` value (None when it
  is one of ccache's remote storage URLs: `redis://`, `redis+unix:`, `http://`, `file:`).
- `make_env(cache_root, ccache, url)` returns the variables that route Kbuild's `gcc` through
  ccache: a masquerade directory (`gcc -> ccache`) first on PATH, so Kbuild's command lines stay
  `gcc ...` (turning the cache on or off still recompiles a warm tree once: the relative path map
  below is on its command lines); the storage is remote only (the warm trees are the local cache). Keys hold no host paths: `base_dir` is the
  named cache root (the unpacked source and the trees are under it, so ccache hashes relative
  paths), `hash_dir` is off (Kbuild maps both paths out of the outputs), and the compiler is
  identified by its content, not its mtime. The build maps the source's path relative to the tree
  as well (`make_argv(relative_src=True)`), since ccache rewrites it so; outputs are then
  byte-identical with and without the cache.
- `read_stats(path)` counts the results ccache appended to the stats log of one build:
  `{"hits", "misses", "uncacheable", "missed"}` (`missed`: the inputs it compiled). A storage that cannot be reached is a miss, never an error.
- `redacted(url)` is the URL without its password, for logs and reports.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Set, Tuple

SCHEMES = ("redis://", "redis+unix:", "http://", "file:")
STATS_LOG = "ccache-stats.log"
_HITS = ("direct_cache_hit", "preprocessed_cache_hit")
_PASSWORD = re.compile(r"^(\w[\w+]*://[^/@:]*):[^/@]*@")


def url_problem(url: str) -> Optional[str]:
    if not url.startswith(SCHEMES):
        return f"{url!r} is not a ccache remote storage URL (one of {', '.join(SCHEMES)}...)"
    if any(c.isspace() or c == "|" for c in url) or not url.isprintable():
        # ccache reads a list of storages separated by spaces or `|`; one URL is one storage.
        return f"{url!r} holds a space, `|` or an unprintable character"
    return None


def redacted(url: str) -> str:
    return _PASSWORD.sub(r"\1:***@", url)


def make_env(cache_root: str, ccache: str, url: str) -> Dict[str, str]:
    """Environment additions for make (PATH is the caller's PATH with the masquerade first)."""
    root = os.path.realpath(cache_root)
    home = os.path.join(root, "object-cache")
    masquerade = os.path.join(home, "bin")
    os.makedirs(masquerade, exist_ok=True)
    link = os.path.join(masquerade, "gcc")
    if not os.path.islink(link) or os.readlink(link) != ccache:
        tmp = f"{link}.{os.getpid()}"
        os.symlink(ccache, tmp)
        os.replace(tmp, link)
    return {
        "PATH": masquerade + os.pathsep + os.environ.get("PATH", ""),
        "CCACHE_DIR": os.path.join(home, "local"),
        "CCACHE_REMOTE_STORAGE": url,
        "CCACHE_REMOTE_ONLY": "true",
        "CCACHE_BASEDIR": root,
        "CCACHE_NOHASHDIR": "true",
        "CCACHE_COMPILERCHECK": "content",
        "CCACHE_STATSLOG": os.path.join(home, f"{STATS_LOG}.{os.getpid()}"),
        "CCACHE_LOGFILE": "",
    }


def read_stats(path: str) -> Dict[str, object]:
    """Hits, misses and uncacheable calls in a ccache stats log (a `# input` line, then one
    result word a line, per call), and `missed`: the inputs of the misses as ccache saw them
    (relative to the tree where they are under the named cache root), sorted."""
    try:
        with open(path) as f:
            lines = [line.rstrip("\n") for line in f]
    except FileNotFoundError:
        lines = []
    calls: List[Tuple[str, Set[str]]] = []
    for line in lines:
        if line.startswith("#"):
            calls.append((line[1:].strip(), set()))
        elif line.strip() and calls:
            calls[-1][1].add(line.strip())
    counts = {"hits": 0, "misses": 0, "uncacheable": 0}
    missed = []
    for source, words in calls:
        if words & set(_HITS):
            counts["hits"] += 1
        elif "cache_miss" in words:
            counts["misses"] += 1
            missed.append(source)
        else:
            counts["uncacheable"] += 1
    return {**counts, "missed": sorted(missed)}
