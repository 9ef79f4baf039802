"""BUILD file target `kernel_baseline`: a QEMU machine and a trace kernel, traced at boot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pants.core.goals.package import OutputPathField, PackageFieldSet
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    IntField,
    OptionalSingleSourceField,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.strutil import help_text

from kernel_rules.domain.guest.qemu import APPENDED_TO_CMDLINE, cmdline_problem
from kernel_rules.rules.types import BaselineMachine
from kernel_rules.targets.fields import (
    ExistingFilesMixin,
    KernelDependenciesField,
    MachineCpusField,
    MachineDevicesField,
    MachineMemoryField,
    MachineTypeField,
    TraceTimeoutField,
    invalid_field,
)


class BaselineKernelField(StringField):
    alias = "kernel"
    required = True
    help = help_text(
        """
        Address of the trace kernel: a `kernel_image` with `debug_info=True`, or a
        `prebuilt_kernel` (a distribution's kernel with its debug package). Its configuration is
        the universe tailored kernels choose from, so enable everything the applications might use.
        """
    )


class BaselineCmdlineField(StringField):
    alias = "cmdline"
    default = "console=ttyS0"
    help = help_text(
        f"""
        Kernel command line. kernel_rules adds `nokaslr` (traced addresses must match the
        vmlinux) and its own init parameters (`{APPENDED_TO_CMDLINE.strip()}` at most). One QEMU
        argument; never seen by a shell. With what kernel_rules adds it must fit in the
        kernel's 2,047 bytes (x86's COMMAND_LINE_SIZE): the kernel silently drops the rest.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        problem = cmdline_problem(value)
        if problem:
            raise invalid_field(cls.alias, address, problem)
        return value


class BaselineModulesField(StringSequenceField):
    alias = "modules"
    default = ()
    help = help_text(
        """
        Loadable modules of the trace kernel to load at boot, by name (`virtio_net`), before the
        boot step, in this order and each after the modules it depends on (their `.modinfo`
        `depends`). Only for a `prebuilt_kernel`: its image package provides the module files.
        Every guest of the baseline (boot and app traces, app checks) loads them; traced module
        code is mapped through the modules' debug files. A tailored kernel built without module
        support has their code built in and skips loading.
        """
    )


class BaselineBootScriptField(ExistingFilesMixin, OptionalSingleSourceField):
    alias = "boot_script"
    expected_file_extensions = (".sh",)
    help = help_text(
        """
        Optional shell script (busybox sh) run by the guest's init during the traced boot, after
        /proc, /sys and /dev are mounted and before the init marker: the deployment's own start-up
        (bringing up devices, mounting filesystems). Everything it makes the kernel do is part of
        the baseline. It must exit 0: any other exit status fails the boot trace. Every app guest
        of this baseline (its trace and its checks on tailored kernels) runs it too, before the
        app's window, so a workload finds what the deployment's start-up made (a mounted /srv,
        an interface up); when it fails there, the app fails with its exit status. The target's
        primary source (what `filedeps` lists); it must exist.
        """
    )


class BaselineMinimiseMaxTriesField(IntField):
    alias = "minimise_max_tries"
    default = 120
    help = help_text(
        """
        At most this many tries (each a build and a boot) to verify this baseline: which of its
        soft requirements (code that ran only during kernel initialisation) its boot check
        needs. The check boots each candidate on this machine with the baseline's modules and
        `boot_script` and an empty window. Computed once, the first time a `tailored_kernel`
        of this baseline is minimised (`minimise`), and shared by all of them; every try is
        cached. When the tries run out, the baseline keeps what was not decided.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> int:
        value = super().compute_value(raw_value, address)
        if value < 1:
            raise invalid_field(cls.alias, address, f"must be at least 1, got {value}")
        return value


class KernelBaselineTarget(Target):
    alias = "kernel_baseline"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        KernelDependenciesField,
        BaselineKernelField,
        MachineTypeField,
        MachineCpusField,
        MachineMemoryField,
        MachineDevicesField,
        BaselineCmdlineField,
        BaselineModulesField,
        BaselineBootScriptField,
        TraceTimeoutField,
        BaselineMinimiseMaxTriesField,
        OutputPathField,
    )
    help = help_text(
        """
        A deployment environment: a QEMU machine and a trace kernel, traced at boot.

        `pants package` boots the trace kernel under QEMU (TCG, `-icount`: deterministic) with
        instruction logging from the very first instruction, maps every executed kernel address
        to its source line and the Kbuild and `#if` conditions around it, and writes the
        resulting *baseline config set* (`config-set.json`, named by its sha256) and a readable
        `summary.md` to dist/.
        """
    )


@dataclass(frozen=True)
class BaselineFieldSet(PackageFieldSet):
    required_fields = (BaselineKernelField,)

    kernel: BaselineKernelField
    machine: MachineTypeField
    cpus: MachineCpusField
    memory: MachineMemoryField
    devices: MachineDevicesField
    cmdline: BaselineCmdlineField
    modules: BaselineModulesField
    boot_script: BaselineBootScriptField
    timeout: TraceTimeoutField
    minimise_max_tries: BaselineMinimiseMaxTriesField
    output_path: OutputPathField

    def machine_description(self) -> BaselineMachine:
        return BaselineMachine(
            self.machine.value,
            self.cpus.value,
            self.memory.value,
            tuple(self.devices.value or ()),
            self.cmdline.value,
        )
