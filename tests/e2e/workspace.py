"""Helpers for end-to-end tests: a scratch copy of the repository driven by the real `pants`,
with its own local store and named caches, and direct runs of the Kbuild driver."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
IGNORED = {
    ".venv",
    ".venv-buildgrid",
    ".venv-volatility3",
    "dist",
    ".pants.d",
    ".pids",
    ".pytest_cache",
    "__pycache__",
    ".git",
}


@dataclass
class PantsResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Workspace:
    """A copy of the repo at `root` (the tarball hard-linked), with caches under `state`."""

    def __init__(self, root: Path, state: Path, tarball: Path) -> None:
        self.root, self.state = root, state
        shutil.copytree(
            REPO,
            root,
            ignore=lambda d, names: [
                n for n in names if n in IGNORED or n.endswith((".tar.xz", ".deb"))
            ],
        )
        big = [(tarball, root / "third_party/linux" / tarball.name)]
        big += [
            (deb, root / deb.relative_to(REPO))
            for deb in sorted((REPO / "third_party/debian/debs").glob("*.deb"))
        ]
        for src, dest in big:
            try:
                os.link(src, dest)
            except OSError:
                shutil.copyfile(src, dest)
        self.named_caches = state / "named_caches"
        self.store = state / "lmdb_store"

    def pants(self, *args: str, timeout: float = 1500) -> PantsResult:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PANTS_")}
        env["NO_SCIE_WARNING"] = "1"
        start = time.monotonic()
        proc = subprocess.run(
            [
                str(REPO / ".venv/bin/pants"),
                f"--named-caches-dir={self.named_caches}",
                f"--local-store-dir={self.store}",
                "--no-colors",
                *args,
            ],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return PantsResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    def stop_pantsd(self) -> None:
        for pid_file in self.root.glob(".pids/*/pantsd/pid"):
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass

    @property
    def kernel_cache(self) -> Path:
        return self.named_caches / "kernel_rules"


def driver_env() -> Dict[str, str]:
    """The environment the Pants rules give the Kbuild driver."""
    return {
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        "PYTHONPATH": str(REPO),
        "LC_ALL": "C",
        "TZ": "UTC",
        "HOME": "/nonexistent",
    }


def driver_build_argv(
    cache: Path, tarball: Path, sha256: str, config: Path, out: Path, stats: Optional[Path] = None
) -> List[str]:
    argv = [
        "python3",
        "-m",
        "kernel_rules.domain.build.kbuild",
        "build",
        "--tarball",
        str(tarball),
        "--sha256",
        sha256,
        "--cache",
        str(cache),
        "--jobs",
        str(os.cpu_count() or 1),
        "--config",
        str(config),
        "--out",
        str(out),
    ]
    return argv + (["--stats", str(stats)] if stats else [])


def run_driver(argv: Sequence[str], timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(argv), env=driver_env(), capture_output=True, text=True, timeout=timeout, cwd=str(REPO)
    )


def build_stats(path: Path) -> dict:
    return json.loads(path.read_text())


def with_symbol(config_text: str, symbol: str, value: str) -> str:
    """`config_text` with CONFIG_`symbol` set to `value` (y/n), for one-symbol deltas."""
    lines = [
        ln
        for ln in config_text.splitlines()
        if ln not in (f"CONFIG_{symbol}=y", f"# CONFIG_{symbol} is not set")
    ]
    lines.append(f"CONFIG_{symbol}=y" if value == "y" else f"# CONFIG_{symbol} is not set")
    return "\n".join(lines) + "\n"
