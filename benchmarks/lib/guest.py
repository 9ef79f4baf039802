"""Guest images for benchmark boots, built as the rules build them: the product's initramfs
program (`python3 -m kernel_rules.domain.guest.initramfs`) with the product's /init
(`kernel_rules.domain.guest.init`: BOOT_INIT, render_app_init) and window marker programs."""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks.lib import REPO
from benchmarks.lib.report import SEARCH_PATH, tool
from kernel_rules.domain.guest.init import BOOT_INIT, BOOT_SCRIPT, render_app_init
from kernel_rules.domain.guest.initramfs import (
    cpio_newc,
    gzip_deterministic,
    regular,
    with_parent_dirs,
)

MARKER_SOURCE = REPO / "kernel_rules/domain/guest/window_marker.c"


def pylib(tmp: Path) -> Path:
    """kconfiglib and elftools from this venv, as rules/scripts.py ships them to sandboxes."""
    lib = tmp / "pylib"
    lib.mkdir(exist_ok=True)
    for name in ("kconfiglib", "elftools"):
        src = Path(importlib.import_module(name).__file__)
        src = src.parent if src.name == "__init__.py" else src
        if not (lib / src.name).exists():
            (lib / src.name).symlink_to(src)
    return lib


def domain_env(tmp: Path) -> Dict[str, str]:
    """The environment the rules give domain processes (rules/toolchain.py), with PYTHONPATH on
    this checkout and the pure-Python modules the sandboxes get."""
    return {
        "PATH": SEARCH_PATH,
        "PYTHONPATH": f"{REPO}:{pylib(tmp)}",
        "LC_ALL": "C",
        "TZ": "UTC",
        "HOME": "/nonexistent",
    }


def run_domain(argv: List[str], env: Dict[str, str], cwd: Path) -> None:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{done.stderr[-4000:]}")


def initramfs(tmp: Path, name: str, init: str, args: Sequence[str]) -> Path:
    """tmp/<name>.cpio.gz from the product's initramfs program: busybox, `init`, the window
    marker programs and `args` (--file SRC DEST, --binary PATH, --program C, --tree DIR)."""
    work = tmp / "initramfs" / name
    work.mkdir(parents=True)
    (work / "init").write_text(init)
    (work / "init").chmod(0o755)
    out = tmp / f"{name}.cpio.gz"
    run_domain(
        [
            tool("python3"),
            "-m",
            "kernel_rules.domain.guest.initramfs",
            "--busybox",
            tool("busybox"),
            "--init",
            "init",
            "--out",
            str(out),
            "--gcc",
            tool("gcc"),
            "--marker-source",
            str(MARKER_SOURCE),
            *args,
        ],
        domain_env(tmp),
        work,
    )
    return out


def boot_image(tmp: Path, name: str, boot_script: Optional[Path]) -> Path:
    """A baseline's boot image (rules/boot.py boot_initramfs): BOOT_INIT and its boot step."""
    extra = ["--file", str(boot_script), BOOT_SCRIPT] if boot_script else []
    return initramfs(tmp, name, BOOT_INIT, extra)


def app_image(
    tmp: Path,
    name: str,
    label: str,
    workload: Path,
    files: Sequence[tuple] = (),
    binaries: Sequence[str] = (),
    programs: Sequence[Path] = (),
) -> Path:
    """An app guest's image (rules/trace.py app_initramfs): render_app_init, the workload at
    app/<its name>, `files` as (src, dest) pairs, host `binaries` with their libraries."""
    args = ["--file", str(workload), f"app/{workload.name}"]
    for src, dest in files:
        args += ["--file", str(src), dest]
    for p in programs:
        args += ["--program", str(p)]
    for b in binaries:
        args += ["--binary", b]
    return initramfs(tmp, name, render_app_init(label, workload.name), args)


def appended(image: Path, files: Dict[str, bytes], out: Path) -> Path:
    """`image` with a second gzip cpio appended holding `files` (the kernel unpacks both; a
    later file replaces an earlier one of the same path)."""
    base = image.read_bytes()
    overlay = gzip_deterministic(
        cpio_newc(with_parent_dirs([regular(p, data) for p, data in files.items()]))
    )
    out.write_bytes(base + b"\0" * ((4 - len(base) % 4) % 4) + overlay)
    return out
