"""The machine, timing, number formats and the Markdown page a benchmark writes to docs/."""

from __future__ import annotations

import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence, Tuple, TypeVar

from benchmarks.lib import REPO

T = TypeVar("T")
SEARCH_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"  # [kernel-build].search_path's default


def tool(name: str) -> str:
    """A host tool on the rules' search path."""
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        raise SystemExit(f"{name} is not on {SEARCH_PATH}: run ./pants --version first")
    return path


def first_line(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True).stdout.splitlines()[0]


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        return next(
            (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
            platform.processor() or "?",
        )


def qemu_version() -> str:
    return first_line(tool("qemu-system-x86_64"), "--version")


def gcc_version() -> str:
    return first_line(tool("gcc"), "--version")


def timed(fn: Callable[..., T], *args, **kwargs) -> Tuple[T, float]:
    """(fn(*args, **kwargs), seconds it took)."""
    t0 = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - t0


def median_range(values: Sequence[float]) -> str:
    """`median (min-max)`, two decimals."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def fmt_int(v) -> str:
    return "-" if v is None else f"{v:,}"


def pct(a: float, b: float) -> str:
    return f"{100.0 * a / b:.1f}%"


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def write_page(path: Path, text: str, echo: bool = True) -> None:
    """Print the page (unless echo=False) and write it to `path` (under docs/)."""
    if echo:
        print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)
