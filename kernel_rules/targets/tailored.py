"""BUILD file target `tailored_kernel`: a baseline, its apps and overrides, composed, built and checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

from pants.core.goals.package import OutputPathField, PackageFieldSet
from pants.core.goals.test import TestFieldSet
from pants.engine.addresses import Address
from pants.engine.target import (
    BoolField,
    COMMON_TARGET_FIELDS,
    IntField,
    InvalidFieldException,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.strutil import help_text

from kernel_rules.domain.kconfig.config_policy import PolicyError, forbid_symbol, force_value
from kernel_rules.targets.fields import (
    KernelDependenciesField,
    LayoutFieldsField,
    LayoutHeadersField,
)


class TailoredBaselineField(StringField):
    alias = "baseline"
    required = True
    help = help_text(
        """
        Address of the `kernel_baseline` (the deployment environment). Its config set is always
        part of the composition; its trace kernel's configuration is the universe the tailored
        configuration is chosen from; its machine is where `pants test` boots the result.
        """
    )


class TailoredAppsField(StringSequenceField):
    alias = "apps"
    default = ()
    help = help_text(
        """
        Addresses of the `app_profile` targets the kernel must run. Each must be traced on the
        same `baseline`. `pants test` runs every app's workload on the tailored kernel.
        """
    )


class TailoredForceField(StringSequenceField):
    alias = "force"
    default = ()
    help = help_text(
        """
        Values that must hold, as `.config` lines: `CONFIG_X=y`, `X=m`, `# CONFIG_X is not set`,
        or an int/hex/string value (`CONFIG_NR_CPUS=4`) that replaces the trace kernel's. A
        bool/tristate value must be reachable inside the trace kernel's configuration; an
        int/hex/string value must survive `make olddefconfig` (e.g. lie in the symbol's range).
        String values are data: no `$`, backticks, quotes, backslashes, `;|&<>#` or newlines, and
        options naming build-time files (`INITRAMFS_SOURCE`, `EXTRA_FIRMWARE`, `MODULE_SIG_KEY`,
        ...) take only "" or a relative path inside the kernel tree. Checked when the BUILD file
        is read.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for i, line in enumerate(value or ()):
            try:
                force_value(line, f"{address} field `{cls.alias}`[{i}]")
            except PolicyError as e:
                raise InvalidFieldException(str(e)) from None
        return value


class TailoredForbidField(StringSequenceField):
    alias = "forbid"
    default = ()
    help = help_text(
        """
        Symbols that must be off (`X` or `CONFIG_X`). Forbidding something a trace requires is an
        error that names the conflicting requirements and where each comes from.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for i, name in enumerate(value or ()):
            try:
                forbid_symbol(name, f"{address} field `{cls.alias}`[{i}]")
            except PolicyError as e:
                raise InvalidFieldException(str(e)) from None
        return value


class TailoredObjectiveField(StringField):
    alias = "objective"
    default = "size"
    valid_choices = ("size", "options")
    help = help_text(
        """
        What the solver minimises among the valid configurations meeting every requirement:
        `size`, the compiled size of the objects each option brings in (measured on the trace
        kernel's build), or `options`, the number of enabled options.
        """
    )


class TailoredDebugInfoField(BoolField):
    alias = "debug_info"
    default = False
    help = help_text(
        """
        Also require DWARF debug info (DEBUG_INFO_DWARF5), so that the tailored kernel can itself
        serve as a trace kernel. Larger vmlinux, slower builds.
        """
    )


class TailoredEmbedConfigField(BoolField):
    alias = "embed_config"
    default = True
    help = help_text(
        """
        Embed the kernel's `.config` in its image (`CONFIG_IKCONFIG=y`, a hard requirement), so
        that the kernel's own `scripts/extract-ikconfig` recovers it, byte for byte, from the
        bzImage or from a memory dump, and `layout.json` names its sha256. The report says what
        it costs (the gzipped configuration, about 10 KB). `False` forbids it.
        """
    )


class TailoredStaticSyscallsField(StringField):
    alias = "static_syscalls"
    default = "off"
    valid_choices = ("off", "app", "image")
    help = help_text(
        """
        Static syscall coverage: keep every option that gates a syscall the apps' binaries can
        make (found by disassembling them: each app profile's `syscalls.json`), even if no trace
        saw it, so that a path the workload did not take does not meet ENOSYS. `app`: the
        syscalls of each app's own `programs` and `binaries` and the libraries they load;
        `image`: also those of every other program of its image (busybox); `off`: only what the
        traces saw. These requirements are hard (a minimisation never removes them); syscalls
        the trace kernel itself lacks cannot be kept and are listed. `compose.json` and the
        report say what the coverage costs in options and in the size objective.
        """
    )


class TailoredMinimiseField(StringField):
    alias = "minimise"
    default = "off"
    valid_choices = ("off", "baseline", "traced")
    help = help_text(
        """
        Verified minimisation: leave out *soft* requirements when booting the kernel and running
        every app's workload shows they are not needed. `off`: every traced requirement is kept
        (a boot executes the initcalls of everything built in, so this keeps much that no app
        needs). `baseline`: the requirements only the baseline's trace has, and that ran only
        during kernel initialisation, are soft. `traced`:
        every traced requirement is soft (code an app's window executed, e.g. at process exit,
        is not always code it needs). `force` always holds. The baseline is verified first,
        once for all its kernels (its `minimise_max_tries`): which of its boot-time requirements
        its boot check needs. This kernel's first try then leaves out everything the baseline
        did not need and runs every app's workload; only what fails there (and, with `traced`,
        what the baseline did not decide) is searched. Each try composes, builds (in a warm
        tree) and runs the workloads; every try is cached, so a rerun repeats none. The search
        bisects groups of requirements (by Kconfig file), then the members of the kept groups;
        `minimise.json` and `verified-baseline.json` list every try. With no `apps`, the kernel
        is the verified baseline itself: its tries, `package` and `test` run the baseline's boot
        check.
        """
    )


class TailoredMinimiseMaxTriesField(IntField):
    alias = "minimise_max_tries"
    default = 120
    help = help_text(
        """
        At most this many tries (each a build and a boot per app) for `minimise`, on top of its
        verified baseline (whose tries the baseline's own `minimise_max_tries` bounds); when
        they run out, the kernel is the smallest passing candidate so far and the report says
        the minimisation is incomplete.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> int:
        value = super().compute_value(raw_value, address)
        if value < 1:
            raise InvalidFieldException(
                f"{address} field `{cls.alias}`: must be at least 1, got {value}"
            )
        return value


class TailoredKernelTarget(Target):
    alias = "tailored_kernel"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        KernelDependenciesField,
        TailoredBaselineField,
        TailoredAppsField,
        TailoredForceField,
        TailoredForbidField,
        TailoredObjectiveField,
        TailoredDebugInfoField,
        TailoredEmbedConfigField,
        TailoredStaticSyscallsField,
        LayoutFieldsField,
        LayoutHeadersField,
        TailoredMinimiseField,
        TailoredMinimiseMaxTriesField,
        OutputPathField,
    )
    help = help_text(
        """
        A kernel composed for a deployment environment and a set of applications.

        The baseline's and the apps' config sets, plus `force` and `forbid`, become a MaxSAT
        problem over the kernel's own Kconfig: every requirement holds, everything else may only
        be what the trace kernel has, and the objective is minimised. `make olddefconfig` then
        checks the answer. Kbuild builds it in a warm tree (an existing tailored kernel's tree
        when one is close, so adding an app recompiles only what changes).

        `pants package` writes bzImage, vmlinux, System.map, config, defconfig, `layout.json`
        (identity, key symbols and structure layouts for memory readers), the composed
        `requirements.json`, and `report.md` / `report.json` (options and sizes against the
        trace kernel, boot time, which apps passed). `pants test` boots the kernel on the
        baseline's machine with each app's image and runs each workload.
        """
    )


@dataclass(frozen=True)
class TailoredKernelFieldSet(PackageFieldSet):
    required_fields = (TailoredBaselineField,)

    baseline: TailoredBaselineField
    apps: TailoredAppsField
    force: TailoredForceField
    forbid: TailoredForbidField
    objective: TailoredObjectiveField
    debug_info: TailoredDebugInfoField
    embed_config: TailoredEmbedConfigField
    static_syscalls: TailoredStaticSyscallsField
    layout_fields: LayoutFieldsField
    layout_headers: LayoutHeadersField
    minimise: TailoredMinimiseField
    minimise_max_tries: TailoredMinimiseMaxTriesField
    output_path: OutputPathField


@dataclass(frozen=True)
class TailoredKernelTestFieldSet(TestFieldSet):
    required_fields = (TailoredBaselineField,)

    baseline: TailoredBaselineField
