"""How far running Kbuild builds are: written by the build step, read by `pants kernel-progress`.

A build writes `progress/<pool>-<tree>.json` in the named cache (the cache of unpacked sources
and warm trees, shared by every sandbox on the machine) when it starts, rewrites it at most once a
second as Kbuild reports compiling objects, and deletes it when it ends. A record whose process
is gone (a build killed with its sandbox) is stale: `active` ignores it and removes it.

What a build expects to compile is an estimate, said as such:
- in a warm tree, about the objects of its last build whose dependency files name a symbol that
  changed since (`kbuild_deps.lower_bound` without the objects new to the image, which are not
  known before Kbuild runs, and counting objects the new configuration may drop);
- in a new tree, about as many objects as the last build of another tree of the same source;
- otherwise unknown.

    python3 -m kernel_rules.domain.build.progress --cache DIR   prints the active builds (JSON)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, List, Optional, Sequence

PROGRESS_DIR = "progress"
FORMAT = "kernel_rules/build-progress@1"


@dataclass(frozen=True)
class BuildProgress:
    """One running build: its tree, process, start (seconds since the epoch), the objects
    compiled so far, and the estimate of what it compiles (`expected`, with `expected_kind`
    "about"; None when unknown) out of `objects` in the tree's last build."""

    tree: str
    pid: int
    started: float
    compiled: int
    options: int
    expected: Optional[int] = None
    expected_kind: str = ""
    objects: Optional[int] = None
    finished_compiling: bool = False

    def describe(self, now: float) -> str:
        """One line for a person, e.g. `tree 2: 312 of about 400 objects compiled, 95 s`."""
        if self.expected:
            of = f" of {self.expected_kind} {self.expected}".replace("  ", " ")
            pct = f" ({min(100, round(100 * self.compiled / self.expected))}%)"
        else:
            of, pct = "", ""
        tail = ", linking" if self.finished_compiling else ""
        return (
            f"tree {self.tree} ({self.options} options): {self.compiled}{of} objects "
            f"compiled{pct}{tail}, {round(now - self.started)} s"
        )


def _path(cache_root: str, tree: str) -> str:
    return os.path.join(cache_root, PROGRESS_DIR, tree.replace(os.sep, "-") + ".json")


def _write(cache_root: str, progress: BuildProgress) -> None:
    path = _path(cache_root, progress.tree)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"format": FORMAT, **asdict(progress)}, f, sort_keys=True)
    os.replace(tmp, path)


@contextlib.contextmanager
def reporting(
    cache_root: str,
    tree: str,
    options: int,
    expected: Optional[int],
    expected_kind: str,
    objects: Optional[int],
    interval: float = 1.0,
) -> Iterator[Callable[[int, bool], None]]:
    """Publish a build's progress while the block runs; yields `update(compiled, done)`, cheap
    to call for every object (it writes at most once per `interval` seconds, and always when
    `done`). The record is removed when the block ends, however it ends."""
    state = BuildProgress(
        tree, os.getpid(), time.time(), 0, options, expected, expected_kind, objects
    )
    last = [0.0]

    def update(compiled: int, done: bool = False) -> None:
        now = time.monotonic()
        if done or now - last[0] >= interval:
            last[0] = now
            _write(
                cache_root,
                BuildProgress(
                    **{**asdict(state), "compiled": compiled, "finished_compiling": done}
                ),
            )

    _write(cache_root, state)
    try:
        yield update
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_path(cache_root, tree))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def active(cache_root: str) -> List[BuildProgress]:
    """The builds running now, oldest first; stale and unreadable records are removed."""
    out = []
    directory = os.path.join(cache_root, PROGRESS_DIR)
    if not os.path.isdir(directory):
        return out
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not name.endswith(".json"):
            continue
        try:
            with open(path) as f:
                data = json.load(f)
            if data.pop("format", None) != FORMAT:
                raise ValueError("other format")
            progress = BuildProgress(**data)
        except (OSError, ValueError, TypeError):
            with contextlib.suppress(OSError):
                os.unlink(path)
            continue
        if _alive(progress.pid):
            out.append(progress)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)
    return sorted(out, key=lambda p: p.started)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="progress", description=__doc__.splitlines()[0])
    p.add_argument("--cache", required=True, help="the named cache's root")
    args = p.parse_args(argv)
    now = time.time()
    json.dump(
        {"now": now, "builds": [asdict(b) for b in active(args.cache)]},
        sys.stdout,
        sort_keys=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
