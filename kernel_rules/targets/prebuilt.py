"""BUILD file target `prebuilt_kernel`: a distribution's kernel used as a trace kernel."""

from __future__ import annotations

from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    SecondaryOwnerMixin,
    SingleSourceField,
    StringField,
    Target,
)
from pants.util.strutil import help_text

from kernel_rules.targets.fields import KernelDependenciesField, Sha256Field


class PrebuiltSourceField(StringField):
    alias = "source"
    required = True
    help = help_text(
        """
        Address of the `linux_source` the tailored kernels are built from. The packages must be
        of its `package_version` (or, if it has none, of its upstream `version`): otherwise
        traced source lines would not be the lines the tailored kernels compile.
        """
    )


class PrebuiltImageDebField(SingleSourceField, SecondaryOwnerMixin):
    alias = "image_deb"
    required = True
    expected_file_extensions = (".deb",)
    help = help_text(
        """
        The kernel image package, relative to the BUILD file (Debian's
        `linux-image-<abi>-<flavour>-unsigned_<version>_amd64.deb`): vmlinuz, config and modules.
        Not committed: a setup command fetches it (see docs/debian-cloud.md). A secondary
        source of the target (`debug_deb` is the primary one): `--changed-since` and file
        arguments find the target from it, `filedeps` does not list it.
        """
    )


class PrebuiltImageSha256Field(Sha256Field):
    alias = "image_sha256"
    required = True
    help = "sha256 of `image_deb`, 64 hex digits; every use checks the file against it."


class PrebuiltDebugDebField(SingleSourceField):
    alias = "debug_deb"
    required = True
    expected_file_extensions = (".deb",)
    help = help_text(
        """
        The debug package of the same build (`linux-image-<abi>-<flavour>-dbg_<version>_amd64.deb`):
        the vmlinux with DWARF and one debug file per module, which tracing maps addresses with.
        The target's primary source (what `filedeps` lists).
        """
    )


class PrebuiltDebugSha256Field(Sha256Field):
    alias = "debug_sha256"
    required = True
    help = "sha256 of `debug_deb`, 64 hex digits; every use checks the file against it."


class PrebuiltKernelTarget(Target):
    alias = "prebuilt_kernel"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        KernelDependenciesField,
        PrebuiltSourceField,
        PrebuiltImageDebField,
        PrebuiltImageSha256Field,
        PrebuiltDebugDebField,
        PrebuiltDebugSha256Field,
    )
    help = help_text(
        """
        A distribution's prebuilt kernel (Debian's image and debug packages), for use as the
        trace kernel of a `kernel_baseline`.

        Its configuration is the universe tailored kernels choose from, its debug vmlinux and
        module debug files map traced addresses to source lines, and its modules can be loaded
        in traced guests (the baseline's `modules` field). Both packages are pinned by sha256 and
        checked against the version of the `source`.
        """
    )
