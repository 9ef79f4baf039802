"""The kernel_rules Pants backend: `backend_packages = ["kernel_rules"]`."""

from kernel_rules.rules import boot, kernel, scripts, source, toolchain
from kernel_rules.target_types import KernelImageTarget, LinuxSourceTarget


def target_types():
    return [LinuxSourceTarget, KernelImageTarget]


def rules():
    return [
        *scripts.rules(),
        *toolchain.rules(),
        *source.rules(),
        *kernel.rules(),
        *boot.rules(),
    ]
