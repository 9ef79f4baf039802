"""Running `./pants` from a benchmark and reading what it leaves in dist/."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from benchmarks.lib import REPO

_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d\d) \[INFO\] (Starting|Completed): (.*)$")


def pants(*args: str, concurrent: bool = False, check: bool = True) -> subprocess.CompletedProcess:
    """`./pants --no-colors --no-dynamic-ui ARGS` in the repository, output captured; exits with
    the output's tail when it fails (unless check=False). `concurrent`: run beside another Pants
    invocation (PANTS_CONCURRENT) instead of waiting for it."""
    env = {**os.environ, **({"PANTS_CONCURRENT": "True"} if concurrent else {})}
    done = subprocess.run(
        [str(REPO / "pants"), "--no-colors", "--no-dynamic-ui", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if check and done.returncode != 0:
        sys.exit(f"./pants {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-6000:]}")
    return done


def package(*targets: str, flags: Tuple[str, ...] = (), concurrent: bool = False) -> str:
    """`./pants [FLAGS] package TARGETS`; returns Pants' log (stderr), where the steps are."""
    return pants(*flags, "package", *targets, concurrent=concurrent).stderr


def peek(spec: str) -> Dict[str, dict]:
    """`./pants peek SPEC`: {target name: its fields}, as the product reads the BUILD file."""
    return {
        t["address"].split(":", 1)[1]: t
        for t in json.loads(pants("peek", spec, concurrent=True).stdout)
    }


def dist(address: str) -> Path:
    """The dist/ directory `package` writes for `dir/sub:name`: dist/dir.sub/name."""
    path, name = address.lstrip("/").split(":", 1)
    return REPO / "dist" / path.replace("/", ".") / name


def step_durations(log: str) -> List[Tuple[str, float]]:
    """(description, seconds) of every process Pants logged as started and completed."""
    started: Dict[str, datetime] = {}
    out = []
    for line in log.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%H:%M:%S.%f")
        if m.group(2) == "Starting":
            started[m.group(3)] = t
        elif m.group(3) in started:
            out.append((m.group(3), round((t - started.pop(m.group(3))).total_seconds(), 1)))
    return out


@contextlib.contextmanager
def scratch_targets(directory: Path, build: str, files: Dict[str, str]) -> Iterator[str]:
    """A BUILD file and the files it names (generated inputs, e.g. a `base_config`), in
    `directory` under the repository while the block runs; yields the directory's address.
    Removed afterwards, so that `./pants package ::` never meets a target without its inputs."""
    directory.mkdir(parents=True, exist_ok=False)
    try:
        for name, text in files.items():
            (directory / name).write_text(text)
        (directory / "BUILD").write_text(build)
        yield str(directory.relative_to(REPO))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
