"""The kernel_rules Pants backend: `backend_packages = ["kernel_rules"]`."""

from kernel_rules.prebuilt_target_types import PrebuiltKernelTarget
from kernel_rules.rules import (
    boot, kernel, output_paths, prebuilt, process, scripts, source, tailor, toolchain, trace)
from kernel_rules.target_types import KernelImageTarget, LinuxSourceTarget
from kernel_rules.tailor_target_types import TailoredKernelTarget
from kernel_rules.trace_target_types import AppProfileTarget, KernelBaselineTarget


def target_types():
    return [LinuxSourceTarget, KernelImageTarget, KernelBaselineTarget, AppProfileTarget,
            TailoredKernelTarget, PrebuiltKernelTarget]


def rules():
    return [
        *scripts.rules(),
        *process.rules(),
        *toolchain.rules(),
        *source.rules(),
        *output_paths.rules(),
        *kernel.rules(),
        *boot.rules(),
        *prebuilt.rules(),
        *trace.rules(),
        *tailor.rules(),
    ]
