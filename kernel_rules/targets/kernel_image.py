"""BUILD file target `kernel_image`: a kernel configured from a base and fragments, built by Kbuild; and the field sets of its goals (package, run, test)."""

from __future__ import annotations

from dataclasses import dataclass
import os
from typing import Iterable, Optional, Tuple

from pants.core.goals.package import OutputPathField, PackageFieldSet
from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior
from pants.core.goals.test import TestFieldSet
from pants.engine.addresses import Address
from pants.engine.target import (
    AsyncFieldMixin,
    BoolField,
    COMMON_TARGET_FIELDS,
    IntField,
    InvalidFieldException,
    OptionalSingleSourceField,
    SecondaryOwnerMixin,
    StringField,
    StringSequenceField,
    Target,
)
from pants.source.filespec import Filespec
from pants.util.memo import memoized_property
from pants.util.strutil import help_text

from kernel_rules.domain.build.kbuild import CONFIG_TARGETS
from kernel_rules.domain.guest.protocol import CHECK_PARAM
from kernel_rules.domain.guest.qemu import cmdline_problem, memory_problem
from kernel_rules.domain.kconfig.fragments import fragment_file_problem
from kernel_rules.targets.fields import (
    ExistingFilesMixin,
    KernelDependenciesField,
    LayoutFieldsField,
    LayoutHeadersField,
    invalid_field,
    positive_int,
)


class KernelSourceField(StringField):
    alias = "source"
    required = True
    help = (
        "Address of the `linux_source` target to build from, e.g. `//third_party/linux:linux-6.1`."
    )


class KernelBaseField(StringField):
    alias = "base"
    default = "tinyconfig"
    valid_choices = CONFIG_TARGETS
    help = help_text(
        """
        The Kbuild configuration target that gives the starting `.config`, before fragments.
        `tinyconfig` is the smallest kernel that builds (not yet bootable: add a fragment);
        `defconfig` is the architecture's default. Ignored when `base_config` is set.
        """
    )


class KernelBaseConfigField(ExistingFilesMixin, OptionalSingleSourceField):
    alias = "base_config"
    help = help_text(
        """
        A full `.config` file to start from instead of `base` (e.g. a distribution's config). It
        is completed with `make olddefconfig` for the source tree before fragments are applied.
        The target's primary source (what `filedeps` lists); it must exist.
        """
    )


class KernelFragmentsField(AsyncFieldMixin, StringSequenceField, SecondaryOwnerMixin):
    alias = "fragments"
    default = ()
    help = help_text(
        """
        Kconfig fragment files, relative to the BUILD file, applied in this order on top of the
        base (a later fragment overrides an earlier one). Each is named exactly (no globs: the
        order matters), inside the repository. Lines are `CONFIG_FOO=value` or
        `# CONFIG_FOO is not set`, in UTF-8. After `make olddefconfig`, every requested value must
        have survived; otherwise the build fails naming the fragment's file:line, the symbol, the
        value asked for, the value it got, and the unmet dependency when Kconfig can tell. String
        values are data: no `$`, backticks, quotes, backslashes, `;|&<>#` or control characters,
        and options naming build-time files (`INITRAMFS_SOURCE`, `EXTRA_FIRMWARE`,
        `MODULE_SIG_KEY`, ...) take only "" or a relative path inside the kernel tree.
        Fragments are secondary sources: `--changed-since` and file arguments find this target
        from a fragment in its directory or below; a fragment elsewhere (`../shared.config`) makes
        this target depend on the target that owns that file (declare one, e.g. a `files`
        target, if none does). `filedeps` does not list fragments.
        """
    )

    @memoized_property
    def filespec(self) -> Filespec:
        """The fragment files, relative to the build root (exact names, never globs)."""
        return {"includes": list(self.repo_paths)}

    @property
    def repo_paths(self) -> Tuple[str, ...]:
        """The fragment files, in field order, relative to the build root."""
        return tuple(
            os.path.normpath(os.path.join(self.address.spec_path, f)) for f in self.value or ()
        )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[Tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        for name in value or ():
            why = fragment_file_problem(address.spec_path, name)
            if why:
                raise InvalidFieldException(f"{address}: field `{cls.alias}`: {name!r} {why}")
        return value


class KernelDebugInfoField(BoolField):
    alias = "debug_info"
    default = False
    help = help_text(
        """
        Build with DWARF 5 debug information (`CONFIG_DEBUG_KERNEL=y`,
        `CONFIG_DEBUG_INFO_DWARF5=y`, applied after `fragments`). Needed for a trace kernel;
        makes vmlinux ~10x larger and the build ~50% slower. Paths in the DWARF are mapped to
        `/kernel/src` and `/kernel/obj`, so the output does not depend on where it was built.
        """
    )


class KernelEmbedConfigField(BoolField):
    alias = "embed_config"
    default = False
    help = help_text(
        """
        Embed the final `.config` in the image (`CONFIG_IKCONFIG=y`, applied after `fragments`),
        so that the kernel's own `scripts/extract-ikconfig` recovers it from the bzImage or
        vmlinux, byte for byte. Costs the gzipped configuration (about 10 KB) in the image.
        """
    )


class KernelArchField(StringField):
    alias = "arch"
    default = "x86_64"
    valid_choices = ("x86_64",)
    help = "The `ARCH` to build for. Only `x86_64` is supported."


class KernelCmdlineField(StringField):
    alias = "cmdline"
    default = "console=ttyS0 nokaslr"
    help = help_text(
        f"""
        Kernel command line for `pants run` and `pants test` boots. Passed to QEMU as a single
        argument, never through a shell. With `{CHECK_PARAM}`, which `pants test` appends, it
        must fit in the kernel's 2,047 bytes (x86's COMMAND_LINE_SIZE): checked when the BUILD
        file is read.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        problem = cmdline_problem(value, f" {CHECK_PARAM}")
        if problem:
            raise invalid_field(cls.alias, address, problem)
        return value


class KernelMemoryField(StringField):
    alias = "memory"
    default = "256M"
    help = help_text(
        """
        Guest memory for `run` and `test` boots, in QEMU's syntax: a number of MiB or a number
        with a `K`, `M`, `G` or `T` suffix (`256M`, `1G`), at least `16M`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        problem = memory_problem(value)
        if problem:
            raise invalid_field(cls.alias, address, problem)
        return value


class KernelBootTimeoutField(IntField):
    alias = "boot_timeout"
    default = 180
    help = help_text(
        """
        Seconds `pants test` waits for the guest's init marker before failing (TCG is slow);
        greater than 0.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[int], address: Address) -> Optional[int]:
        return positive_int(cls.alias, super().compute_value(raw_value, address), address)


class KernelImageTarget(Target):
    alias = "kernel_image"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        KernelDependenciesField,
        KernelSourceField,
        KernelBaseField,
        KernelBaseConfigField,
        KernelFragmentsField,
        KernelDebugInfoField,
        KernelEmbedConfigField,
        LayoutFieldsField,
        LayoutHeadersField,
        KernelArchField,
        KernelCmdlineField,
        KernelMemoryField,
        KernelBootTimeoutField,
        OutputPathField,
    )
    help = help_text(
        """
        A Linux kernel built with Kbuild from a `linux_source`, a base configuration and ordered
        config fragments.

        `pants package` writes `bzImage`, `vmlinux`, `System.map`, the final `config`, a
        `defconfig` (savedefconfig), `sizes.json` and `layout.json` (identity, key symbols and
        structure layouts for memory readers) to dist/. `pants run` boots it under QEMU on the terminal with
        a minimal busybox initramfs; `pants test` boots it to its init marker and powers off.

        Builds are hermetic (sources only from the pinned tarball, an explicit environment,
        toolchain fingerprints in the cache key) and byte-reproducible, and they reuse warm Kbuild
        trees, so a configuration change recompiles only the objects it touches.
        """
    )


@dataclass(frozen=True)
class KernelImageFieldSet(PackageFieldSet):
    required_fields = (KernelSourceField,)

    source: KernelSourceField
    base: KernelBaseField
    base_config: KernelBaseConfigField
    fragments: KernelFragmentsField
    debug_info: KernelDebugInfoField
    embed_config: KernelEmbedConfigField
    layout_fields: LayoutFieldsField
    layout_headers: LayoutHeadersField
    arch: KernelArchField
    output_path: OutputPathField


@dataclass(frozen=True)
class KernelRunFieldSet(RunFieldSet):
    required_fields = (KernelSourceField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED

    cmdline: KernelCmdlineField
    memory: KernelMemoryField


@dataclass(frozen=True)
class KernelTestFieldSet(TestFieldSet):
    required_fields = (KernelSourceField,)

    cmdline: KernelCmdlineField
    memory: KernelMemoryField
    boot_timeout: KernelBootTimeoutField
