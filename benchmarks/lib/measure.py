"""Reading what a packaged kernel measured about itself, and the few numbers it does not."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Dict, Optional, Tuple

from kernel_rules.domain.compose.report import symbol_sizes
from kernel_rules.domain.kconfig.fragments import parse_config


def read_config(path: Path) -> Dict[str, str]:
    return parse_config(path.read_text(), str(path))


def read_sizes(directory: Path) -> dict:
    """The package's `sizes.json`, as the product's build (`kbuild.measure_sizes`) or prebuilt
    unpack writes it: `vmlinux` [text, data, bss], `bzImage` bytes, `objects`, and for a prebuilt
    kernel `modules_bytes`."""
    return json.loads((directory / "sizes.json").read_text())


def code_bytes(vmlinux: Path) -> int:
    """Sum of the function symbols' sizes (`nm -S`): x86_64 pads .text to 2 MiB, which hides
    differences in `size`."""
    nm = subprocess.run(
        ["nm", "-S", "--defined-only", str(vmlinux)], capture_output=True, text=True, check=True
    ).stdout
    return symbol_sizes(nm)["code"]


def enabled_counts(config: Dict[str, str]) -> Tuple[int, int]:
    """(options =y, options =m)."""
    return (sum(v == "y" for v in config.values()), sum(v == "m" for v in config.values()))


def enabled(config: Dict[str, str]) -> int:
    return sum(enabled_counts(config))


def image_release(image: Path) -> str:
    """The kernel release string from a bzImage's setup header (kernel_version at 0x20E)."""
    data = image.read_bytes()[:0x10000]
    off = int.from_bytes(data[0x20E:0x210], "little") + 0x200
    return data[off : data.index(b"\0", off)].decode(errors="replace").split()[0]


def modules_bytes(modules_dir: Optional[Path]) -> Tuple[int, int]:
    """(bytes, count) of the .ko files under an installed lib/modules/<release>/."""
    if modules_dir is None:
        return 0, 0
    kos = [p for p in modules_dir.rglob("*.ko*") if p.is_file()]
    return sum(p.stat().st_size for p in kos), len(kos)
