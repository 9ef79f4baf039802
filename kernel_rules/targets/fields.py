"""Helpers shared by the BUILD file fields: field errors and the QEMU machine fields of baselines."""

from __future__ import annotations

import re
from typing import Iterable, Optional, Tuple

from pants.engine.addresses import Address
from pants.engine.fs import PathGlobs
from pants.engine.target import (
    Dependencies,
    IntField,
    InvalidFieldException,
    StringField,
    StringSequenceField,
)
from pants.option.global_options import UnmatchedBuildFileGlobs
from pants.util.strutil import help_text

from kernel_rules.domain.guest.qemu import memory_problem
from kernel_rules.domain.guest.qemu_devices import device_problem
from kernel_rules.domain.introspect.layout import DEFAULT_FIELDS as DEFAULT_LAYOUT_FIELDS
from kernel_rules.domain.introspect.layout import DEFAULT_HEADERS as DEFAULT_LAYOUT_HEADERS
from kernel_rules.domain.introspect.layout import field_spec_problem, header_problem


def invalid_field(alias: str, address: Address, problem: str) -> InvalidFieldException:
    """The error for a field value refused when the BUILD file is read."""
    return InvalidFieldException(f"{address}: field `{alias}`: {problem}")


def positive_int(alias: str, value: Optional[int], address: Address) -> Optional[int]:
    """`value` when it is None or greater than 0, else the error naming the field."""
    if value is not None and value <= 0:
        raise invalid_field(alias, address, f"must be greater than 0, but was {value}")
    return value


class KernelDependenciesField(Dependencies):
    """The `dependencies` of every kernel_rules target: explicit addresses plus the edges
    inferred from its address-valued fields (rules/dependencies.py). The rules never read it."""

    help = help_text(
        """
        Addresses of other targets this one depends on, in addition to those inferred. Pants
        infers a dependency on every target an address-valued field names (`source`, `kernel`,
        `baseline`, `apps`) and on the owner of every file a field names outside this target's
        directory (a fragment such as `../minimal/boot.config`), so `pants dependencies`,
        `dependents`, `peek` and `--changed-since` see the pipeline without this field. Entries
        here only add graph edges, for `--changed-since`; they change no build.
        """
    )


class Sha256Field(StringField):
    """A pin: 64 hex digits (either case), refused when the BUILD file is read otherwise."""

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise invalid_field(cls.alias, address, f"must be 64 hex digits, got {value!r}")
        return value


class ExistingFilesMixin:
    """For a `SourcesField`: every file it names must exist. A name that matches no file is an
    error naming the target, the field and the name, whatever `[GLOBAL].unmatched_build_file_globs`
    says, as soon as the field is hydrated (by any goal, `filedeps` and dependency inference
    included), instead of an empty field that fails later."""

    def path_globs(self, unmatched_build_file_globs: UnmatchedBuildFileGlobs) -> PathGlobs:
        return super().path_globs(UnmatchedBuildFileGlobs.error())  # type: ignore[misc]


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
            raise invalid_field(
                cls.alias, address, f"{value!r} is not a QEMU machine type (such as `q35`)"
            )
        problem = machine_problem(value)
        if problem:
            raise invalid_field(cls.alias, address, f"{value!r}: {problem}")
        return value


# -machine properties that name host files or host-side objects.
HOST_MACHINE_PROPERTIES = frozenset(
    {
        "dumpdtb",
        "dtb",
        "kernel",
        "initrd",
        "append",
        "firmware",
        "memory-backend",
        "pflash0",
        "pflash1",
        "confidential-guest-support",
        "memory-encryption",
        "sgx-epc",
        "dump-guest-core",
        "mem-merge",
        "graphics",
        "usb",
    }
)


def machine_problem(value: str) -> str:
    """Why a `machine` value may not be used (empty when it may): a type name, optionally with
    `key=value` properties that name no host file or host-side object."""
    kind, *props = value.split(",")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", kind):
        return "a machine type is a name such as `q35` or `pc-q35-7.2`"
    for prop in props:
        key, _, val = prop.partition("=")
        if key in HOST_MACHINE_PROPERTIES or not re.fullmatch(r"[A-Za-z0-9._-]*", val) or not key:
            return (
                f"the property `{prop}` may reach host files or host resources; guests may "
                "not (machine properties are names and numbers only, and not "
                f"{', '.join(sorted(HOST_MACHINE_PROPERTIES))})"
            )
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
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for i, device in enumerate(value or ()):
            why = device_problem(device)
            if why:
                raise InvalidFieldException(
                    f"{address}: field `{cls.alias}`[{i}]: {device!r}: {why}; guests may not reach "
                    "host files or host resources"
                )
        return value


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


class LayoutFieldsField(StringSequenceField):
    alias = "layout_fields"
    default = ()
    help = help_text(
        f"""
        Structure members `layout.json` describes in addition to the defaults
        ({", ".join(f"`{f}`" for f in DEFAULT_LAYOUT_FIELDS[:4])}, ... `list_head.prev`: see
        docs/introspection.md), as `struct.member`; members may be nested
        (`task_struct.se.vruntime`). Each structure's size is recorded too. Offsets are computed
        by a probe compiled in this kernel's configured build tree, so they hold for this
        configuration without debug info. A member this configuration compiles out is listed
        under `absent`; a structure the headers do not define is an error: name its header in
        `layout_headers`.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for spec in value or ():
            problem = field_spec_problem(spec)
            if problem:
                raise invalid_field(cls.alias, address, problem)
        return value


class LayoutHeadersField(StringSequenceField):
    alias = "layout_headers"
    default = ()
    help = help_text(
        f"""
        Kernel headers the layout probe includes in addition to
        {", ".join(f"`{h}`" for h in DEFAULT_LAYOUT_HEADERS)}, as written in
        `#include <...>` (e.g. `linux/fs.h` for `file.f_inode`). Each must exist in the kernel
        source.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for header in value or ():
            problem = header_problem(header)
            if problem:
                raise invalid_field(cls.alias, address, problem)
        return value
