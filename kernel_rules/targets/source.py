"""BUILD file target `linux_source`: a kernel source tarball pinned by sha256."""

from __future__ import annotations

from pants.engine.target import COMMON_TARGET_FIELDS, SingleSourceField, StringField, Target
from pants.util.strutil import help_text

from kernel_rules.targets.fields import KernelDependenciesField, Sha256Field


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


class LinuxSourceSha256Field(Sha256Field):
    alias = "sha256"
    required = True
    help = help_text(
        """
        The sha256 of the tarball, as 64 hex digits (checked when the BUILD file is read). Every
        use of this target checks the file against it and fails naming both digests on a
        mismatch. To move to a new tarball, update this value and
        `third_party/linux/linux-source.lock` together (see docs/sources.md).
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
        KernelDependenciesField,
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
