"""The kernel_rules Pants backend: `backend_packages = ["kernel_rules"]`."""

from kernel_rules.rules import (
    boot,
    build,
    compose,
    configure,
    dependencies,
    explain,
    kbuild,
    map,
    minimise,
    output_paths,
    prebuilt,
    probe,
    progress,
    process,
    scripts,
    source,
    syscalls,
    tailored,
    toolchain,
    trace,
)
from kernel_rules.targets.app_profile import AppProfileTarget
from kernel_rules.targets.baseline import KernelBaselineTarget
from kernel_rules.targets.kernel_image import KernelImageTarget
from kernel_rules.targets.prebuilt import PrebuiltKernelTarget
from kernel_rules.targets.source import LinuxSourceTarget
from kernel_rules.targets.tailored import TailoredKernelTarget


def target_types():
    return [
        LinuxSourceTarget,
        KernelImageTarget,
        KernelBaselineTarget,
        AppProfileTarget,
        TailoredKernelTarget,
        PrebuiltKernelTarget,
    ]


def rules():
    return [
        *scripts.rules(),
        *process.rules(),
        *toolchain.rules(),
        *source.rules(),
        *output_paths.rules(),
        *kbuild.rules(),
        *configure.rules(),
        *build.rules(),
        *boot.rules(),
        *prebuilt.rules(),
        *trace.rules(),
        *map.rules(),
        *compose.rules(),
        *minimise.rules(),
        *syscalls.rules(),
        *probe.rules(),
        *tailored.rules(),
        *progress.rules(),
        *explain.rules(),
        *dependencies.rules(),
    ]
