"""BUILD file target `app_profile`: an app and its workload, traced in a marked window on a baseline."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

from pants.core.goals.package import OutputPathField, PackageFieldSet
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    InvalidFieldException,
    MultipleSourcesField,
    SecondaryOwnerMixin,
    SingleSourceField,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.strutil import help_text

from kernel_rules.targets.fields import (
    ExistingFilesMixin,
    KernelDependenciesField,
    TraceTimeoutField,
    invalid_field,
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
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for path in value or ():
            if not path.startswith("/") or os.path.normpath(path) != path:
                raise InvalidFieldException(
                    f"{address}: field `{cls.alias}`: {path!r} is not an absolute, normalised "
                    "host path (e.g. `/usr/bin/sqlite3`)"
                )
            if not os.path.isfile(path):
                raise InvalidFieldException(
                    f"{address}: field `{cls.alias}`: {path!r} does not exist on this host "
                    "(install the package that provides it)"
                )
        return value


class AppProgramsField(ExistingFilesMixin, MultipleSourcesField, SecondaryOwnerMixin):
    alias = "programs"
    default = ()
    expected_file_extensions = (".c",)
    help = help_text(
        """
        C source files, relative to the BUILD file, each compiled with the host gcc as a static
        program `/usr/bin/<file name without .c>` in the guest. Each must exist. Secondary
        sources: `--changed-since` and file arguments find the target from them, `filedeps` does
        not list them.
        """
    )


class AppFilesField(ExistingFilesMixin, MultipleSourcesField):
    alias = "files"
    default = ()
    help = help_text(
        """
        Data files, relative to the BUILD file, copied under `/app/` in the guest at the same
        relative paths (any file name, `=` included). Each name or glob must match a file.
        The target's primary sources: `filedeps` lists these and no other file field.
        """
    )


class AppWorkloadField(ExistingFilesMixin, SingleSourceField, SecondaryOwnerMixin):
    alias = "workload"
    required = True
    expected_file_extensions = (".sh",)
    help = help_text(
        """
        A shell script (busybox sh) run in `/app` inside the traced window. It should start what it
        needs (daemons included) and exercise the application; its exit status is the verdict.
        It must exist. A secondary source, like `programs`.
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
                raise invalid_field(
                    cls.alias,
                    address,
                    f"{value!r} is not a regular expression (Python syntax): {e}",
                ) from None
        return value


class AppProfileTarget(Target):
    alias = "app_profile"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        KernelDependenciesField,
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


@dataclass(frozen=True)
class AppProfileFieldSet(PackageFieldSet):
    required_fields = (AppBaselineField, AppWorkloadField)

    baseline: AppBaselineField
    binaries: AppBinariesField
    programs: AppProgramsField
    files: AppFilesField
    workload: AppWorkloadField
    success: AppSuccessField
    timeout: TraceTimeoutField
    output_path: OutputPathField
