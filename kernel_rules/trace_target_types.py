"""BUILD file targets for tracing: `kernel_baseline` and `app_profile`."""

from __future__ import annotations

import os

import re
from typing import Iterable, Optional, Tuple

from pants.core.goals.package import OutputPathField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    IntField,
    InvalidFieldException,
    MultipleSourcesField,
    OptionalSingleSourceField,
    SingleSourceField,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.strutil import help_text

from kernel_rules.domain.guest.qemu import APPENDED_TO_CMDLINE, cmdline_problem, memory_problem
from kernel_rules.domain.guest.qemu_devices import device_problem


def invalid_field(alias: str, address: Address, problem: str) -> InvalidFieldException:
    """The error for a field value refused when the BUILD file is read."""
    return InvalidFieldException(f"{address}: field `{alias}`: {problem}")


def positive_int(alias: str, value: Optional[int], address: Address) -> Optional[int]:
    """`value` when it is None or greater than 0, else the error naming the field."""
    if value is not None and value <= 0:
        raise invalid_field(alias, address, f"must be greater than 0, but was {value}")
    return value


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


class MachineTypeField(StringField):
    alias = "machine"
    default = "q35"
    help = help_text(
        """
        QEMU machine type (`-machine`), e.g. `q35`, `pc`, `microvm`. QEMU itself judges it: a
        type it does not know fails the trace with QEMU's own error.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        if not value or not value.strip() or value.startswith("-"):
            raise invalid_field(cls.alias, address, f"{value!r} is not a QEMU machine type "
                                "(such as `q35`)")
        problem = machine_problem(value)
        if problem:
            raise invalid_field(cls.alias, address, f"{value!r}: {problem}")
        return value


# -machine properties that name host files or host-side objects.
HOST_MACHINE_PROPERTIES = frozenset({
    "dumpdtb", "dtb", "kernel", "initrd", "append", "firmware", "memory-backend", "pflash0",
    "pflash1", "confidential-guest-support", "memory-encryption", "sgx-epc", "dump-guest-core",
    "mem-merge", "graphics", "usb"})


def machine_problem(value: str) -> str:
    """Why a `machine` value may not be used (empty when it may): a type name, optionally with
    `key=value` properties that name no host file or host-side object."""
    kind, *props = value.split(",")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", kind):
        return "a machine type is a name such as `q35` or `pc-q35-7.2`"
    for prop in props:
        key, _, val = prop.partition("=")
        if key in HOST_MACHINE_PROPERTIES or not re.fullmatch(r"[A-Za-z0-9._-]*", val) or not key:
            return (f"the property `{prop}` may reach host files or host resources; guests may "
                    "not (machine properties are names and numbers only, and not "
                    f"{', '.join(sorted(HOST_MACHINE_PROPERTIES))})")
    return ""


class MachineCpusField(IntField):
    alias = "cpus"
    default = 1
    help = "Virtual CPUs (`-smp`), at least 1."

    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> Optional[int]:
        return positive_int(cls.alias, super().compute_value(raw_value, address), address)


class MachineMemoryField(StringField):
    alias = "memory"
    default = "256M"
    help = help_text(
        """
        Guest memory in QEMU's syntax: a number of MiB or a number with a `K`, `M`, `G` or `T`
        suffix (`256M`, `1G`), at least `16M`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        problem = memory_problem(value)
        if problem:
            raise invalid_field(cls.alias, address, problem)
        return value


class MachineDevicesField(StringSequenceField):
    alias = "devices"
    default = ()
    help = help_text(
        """
        Extra QEMU devices, one `-device` value each (e.g. `virtio-rng-pci`), as
        `driver[,property=value...]`. Guests never get a host network or a host filesystem:
        network devices have no backend. Devices that reach the host are refused when the BUILD
        file is read: drivers that load host files or pass host devices through (`loader`,
        `vfio-pci`, `usb-host`, `vhost-*`, `virtio-9p-*`, sound cards, ...), properties naming
        host files, devices or backends (`file=`, `romfile=`, `chardev=`, `netdev=`, `drive=`,
        ...), and any property value holding `/`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address
                      ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for i, device in enumerate(value or ()):
            why = device_problem(device)
            if why:
                raise InvalidFieldException(
                    f"{address}: field `{cls.alias}`[{i}]: {device!r}: {why}; guests may not reach "
                    "host files or host resources")
        return value


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


class BaselineBootScriptField(OptionalSingleSourceField):
    alias = "boot_script"
    expected_file_extensions = (".sh",)
    help = help_text(
        """
        Optional shell script (busybox sh) run by the guest's init during the traced boot, after
        /proc, /sys and /dev are mounted and before the init marker: the deployment's own start-up
        (bringing up devices, mounting filesystems). Everything it makes the kernel do is part of
        the baseline. It must exit 0: any other exit status fails the boot trace.
        """
    )


class TraceTimeoutField(IntField):
    alias = "timeout"
    default = 300
    help = help_text(
        """
        Seconds a traced guest may run before the trace fails (QEMU runs in TCG: be generous);
        greater than 0. When an app's workload runs out of time, the failure shows what it
        printed so far.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> Optional[int]:
        return positive_int(cls.alias, super().compute_value(raw_value, address), address)


class KernelBaselineTarget(Target):
    alias = "kernel_baseline"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        BaselineKernelField,
        MachineTypeField,
        MachineCpusField,
        MachineMemoryField,
        MachineDevicesField,
        BaselineCmdlineField,
        BaselineModulesField,
        BaselineBootScriptField,
        TraceTimeoutField,
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


class AppBaselineField(StringField):
    alias = "baseline"
    required = True
    help = "Address of the `kernel_baseline` whose machine and trace kernel the app runs on."


class AppBinariesField(StringSequenceField):
    alias = "binaries"
    default = ()
    help = help_text(
        """
        Absolute paths of host programs to put in the guest at the same paths (e.g.
        `/usr/bin/sqlite3`), with every shared library they need, found from their ELF dynamic
        sections (`DT_NEEDED`, `DT_RUNPATH`, the `PT_INTERP` loader). Their contents are part of
        the cache key. Each must be an absolute, normalised path of an existing host file.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address
                      ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for path in value or ():
            if not path.startswith("/") or os.path.normpath(path) != path:
                raise InvalidFieldException(
                    f"{address}: field `{cls.alias}`: {path!r} is not an absolute, normalised "
                    "host path (e.g. `/usr/bin/sqlite3`)")
            if not os.path.isfile(path):
                raise InvalidFieldException(
                    f"{address}: field `{cls.alias}`: {path!r} does not exist on this host "
                    "(install the package that provides it)")
        return value


class AppProgramsField(MultipleSourcesField):
    alias = "programs"
    default = ()
    expected_file_extensions = (".c",)
    help = help_text(
        """
        C source files, relative to the BUILD file, each compiled with the host gcc as a static
        program `/usr/bin/<file name without .c>` in the guest.
        """
    )


class AppFilesField(MultipleSourcesField):
    alias = "files"
    default = ()
    help = help_text(
        """
        Data files, relative to the BUILD file, copied under `/app/` in the guest at the same
        relative paths (any file name, `=` included).
        """
    )


class AppWorkloadField(SingleSourceField):
    alias = "workload"
    required = True
    expected_file_extensions = (".sh",)
    help = help_text(
        """
        A shell script (busybox sh) run in `/app` inside the traced window. It should start what it
        needs (daemons included) and exercise the application; its exit status is the verdict.
        """
    )


class AppSuccessField(StringField):
    alias = "success"
    help = help_text(
        """
        Optional regular expression (Python syntax, multi-line mode) that must match the
        workload's own output (its stdout and stderr; never the kernel's messages or anything
        else on the console) for the run to count as passed, in addition to exit status 0.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None:
            try:
                re.compile(value, re.M)
            except re.error as e:
                raise invalid_field(cls.alias, address, f"{value!r} is not a regular expression "
                                    f"(Python syntax): {e}") from None
        return value


class AppProfileTarget(Target):
    alias = "app_profile"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        AppBaselineField,
        AppBinariesField,
        AppProgramsField,
        AppFilesField,
        AppWorkloadField,
        AppSuccessField,
        TraceTimeoutField,
        OutputPathField,
    )
    help = help_text(
        """
        An application and a workload that exercises it, traced inside a marked window.

        `pants package` builds an initramfs (busybox, the app's binaries and libraries, programs,
        files, the workload), boots the baseline's trace kernel on the baseline's machine, and
        records every kernel instruction executed between the start and the end of the workload,
        including code that already ran at boot. The result is an *app config set*
        (`config-set.json`), `summary.md` and the workload's own output `workload.log` in dist/.
        The workload must pass (exit 0, and its output must match `success` if set), otherwise
        packaging fails with the console tail and the workload's output.
        """
    )
