"""BUILD file targets: `linux_source` and `kernel_image`."""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

from pants.core.goals.package import OutputPathField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    IntField,
    InvalidFieldException,
    OptionalSingleSourceField,
    SingleSourceField,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.strutil import help_text

from kernel_rules.domain.kconfig.fragments import fragment_file_problem
from kernel_rules.domain.build.kbuild import CONFIG_TARGETS

# ----------------------------------------------------------------------------------------------
# linux_source
# ----------------------------------------------------------------------------------------------


class LinuxSourceTarballField(SingleSourceField):
    alias = "tarball"
    expected_file_extensions = (".xz", ".gz", ".bz2", ".tar")  # `.tar.xz` has the suffix `.xz`
    help = help_text(
        """
        The kernel source tarball, relative to the BUILD file. It is not committed: the setup
        (`./pants` on first use) fetches it and checks it against `sha256`. It must hold exactly one
        top-level directory with the kernel's `Makefile`.
        """
    )


class LinuxSourceSha256Field(StringField):
    alias = "sha256"
    required = True
    help = help_text(
        """
        The sha256 of the tarball, as 64 hex digits. Every use of this target checks the file
        against it and fails naming both digests on a mismatch. To move to a new tarball, update
        this value and `third_party/linux/linux-source.lock` together (see docs/sources.md).
        """
    )


class LinuxSourceVersionField(StringField):
    alias = "version"
    required = True
    help = "The kernel version the tarball holds (e.g. `6.1.192`), for reports and error messages."


class LinuxSourcePackageVersionField(StringField):
    alias = "package_version"
    help = help_text(
        """
        The distribution package version the tarball comes from (e.g. Debian's `6.1.192-2`),
        if any. A `prebuilt_kernel` traced for tailored kernels built from this source must be of
        exactly this version.
        """
    )


class LinuxSourceTarget(Target):
    alias = "linux_source"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        LinuxSourceTarballField,
        LinuxSourceSha256Field,
        LinuxSourceVersionField,
        LinuxSourcePackageVersionField,
    )
    help = help_text(
        """
        A pinned Linux source tarball: the only place kernel sources come from.

        Kernels refer to it by address (`source="//third_party/linux:linux-6.1"`). It is unpacked
        once per sha256 into the kernel_rules cache and shared by every build.
        """
    )


# ----------------------------------------------------------------------------------------------
# kernel_image
# ----------------------------------------------------------------------------------------------


class KernelSourceField(StringField):
    alias = "source"
    required = True
    help = "Address of the `linux_source` target to build from, e.g. `//third_party/linux:linux-6.1`."


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


class KernelBaseConfigField(OptionalSingleSourceField):
    alias = "base_config"
    help = help_text(
        """
        A full `.config` file to start from instead of `base` (e.g. a distribution's config). It
        is completed with `make olddefconfig` for the source tree before fragments are applied.
        """
    )


class KernelFragmentsField(StringSequenceField):
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
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[Iterable[str]], address: Address
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


class KernelArchField(StringField):
    alias = "arch"
    default = "x86_64"
    valid_choices = ("x86_64",)
    help = "The `ARCH` to build for. Only `x86_64` is supported."


class KernelCmdlineField(StringField):
    alias = "cmdline"
    default = "console=ttyS0 nokaslr"
    help = help_text(
        """
        Kernel command line for `pants run` and `pants test` boots. Passed to QEMU as a single
        argument, never through a shell.
        """
    )


class KernelMemoryField(StringField):
    alias = "memory"
    default = "256M"
    help = "Guest memory for `run` and `test` boots, in QEMU's syntax (`256M`, `1G`)."


class KernelBootTimeoutField(IntField):
    alias = "boot_timeout"
    default = 180
    help = "Seconds `pants test` waits for the guest's init marker before failing (TCG is slow)."


class KernelImageTarget(Target):
    alias = "kernel_image"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        KernelSourceField,
        KernelBaseField,
        KernelBaseConfigField,
        KernelFragmentsField,
        KernelDebugInfoField,
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

        `pants package` writes `bzImage`, `vmlinux`, `System.map`, the final `config` and a
        `defconfig` (savedefconfig) to dist/. `pants run` boots it under QEMU on the terminal with
        a minimal busybox initramfs; `pants test` boots it to its init marker and powers off.

        Builds are hermetic (sources only from the pinned tarball, an explicit environment,
        toolchain fingerprints in the cache key) and byte-reproducible, and they reuse warm Kbuild
        trees, so a configuration change recompiles only the objects it touches.
        """
    )
