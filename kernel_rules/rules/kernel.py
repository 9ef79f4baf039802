"""`kernel_image`: configure (base + fragments, checked) -> build (Kbuild, warm tree) -> package.

Each step is one Pants `Process` running `kernel_rules.domain.build.kbuild`, whose cache key holds the
tarball digest, the fragments or final `.config`, the toolchain fingerprint and the driver's own
code. The warm trees live in the named cache `kernel_rules`: they make builds fast, never
different.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import List, Tuple

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField, PackageFieldSet
from pants.engine.addresses import Address
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    GlobMatchErrorBehavior,
    EMPTY_DIGEST,
)
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import HydratedSources, HydrateSourcesRequest
from pants.engine.unions import UnionRule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from kernel_rules.domain.kconfig.config_policy import check_requests
from kernel_rules.domain.kconfig.fragments import FragmentError, decode, parse_fragment
from kernel_rules.rules.process import CACHE_DIR, DomainProcess, error_tail, user_error
from kernel_rules.rules.source import LinuxSource, LinuxSourceRequest, tarball_in_sandbox
from kernel_rules.rules.toolchain import Toolchain, ToolchainRequest, kbuild_toolchain_request
from kernel_rules.rules.output_paths import OutputDir, OutputDirRequest
from kernel_rules.subsystems import KernelBuildSubsystem
from kernel_rules.target_types import (
    KernelArchField,
    KernelBaseConfigField,
    KernelBaseField,
    KernelDebugInfoField,
    KernelFragmentsField,
    KernelSourceField,
)

DEBUG_INFO_FRAGMENT = "CONFIG_DEBUG_KERNEL=y\nCONFIG_DEBUG_INFO_DWARF5=y\n"
ARTIFACTS = ("bzImage", "vmlinux", "System.map", "config", "defconfig", "sizes.json")


class KernelConfigError(Exception):
    """A fragment or base config is malformed or names a host file, or a requested value did not
    survive olddefconfig."""


class KernelBuildError(Exception):
    """Kbuild failed."""


@dataclass(frozen=True)
class KernelImageFieldSet(PackageFieldSet):
    required_fields = (KernelSourceField,)

    source: KernelSourceField
    base: KernelBaseField
    base_config: KernelBaseConfigField
    fragments: KernelFragmentsField
    debug_info: KernelDebugInfoField
    arch: KernelArchField
    output_path: OutputPathField


# ---------------------------------------------------------------------------------------------
# configure
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelConfigRequest:
    field_set: KernelImageFieldSet


@dataclass(frozen=True)
class KernelConfig:
    """The final, checked `.config` (a digest holding the file `.config`) and its source."""

    address: Address
    source: LinuxSource
    arch: str
    digest: Digest


async def _fragment_digest(fs: KernelImageFieldSet) -> Tuple[Digest, List[str]]:
    """The fragment files (in field order, at their repo paths) plus the debug_info fragment,
    each validated line by line; returns the digest and the ordered repo paths."""
    paths = [os.path.normpath(os.path.join(fs.address.spec_path, f))
             for f in fs.fragments.value or ()]
    digest = await Get(
        Digest,
        PathGlobs(
            paths,
            glob_match_error_behavior=GlobMatchErrorBehavior.error,
            description_of_origin=f"the `fragments` field of {fs.address}",
        ),
    )
    contents = await Get(DigestContents, Digest, digest)
    by_path = {c.path: c.content for c in contents}
    for path in paths:
        try:
            _check_config_text(by_path[path], path)
        except FragmentError as e:
            raise KernelConfigError(f"{fs.address}: field `fragments`: {e}") from None
    if fs.debug_info.value:
        extra = await Get(Digest, CreateDigest([FileContent(
            "kernel_rules_debug_info.config", DEBUG_INFO_FRAGMENT.encode())]))
        digest = await Get(Digest, MergeDigests([digest, extra]))
        paths.append("kernel_rules_debug_info.config")
    return digest, paths


def _check_config_text(data: bytes, name: str) -> None:
    """Raise FragmentError (naming `name:line`) unless `data` is UTF-8 `.config` text whose
    values are all data and name no host file (fragments, `base_config`)."""
    violations = check_requests(parse_fragment(decode(data, name), name))
    if violations:
        raise FragmentError(violations[0].message())


def _fragment_name(fs: KernelImageFieldSet, path: str) -> str:
    if path == "kernel_rules_debug_info.config":
        return f"{fs.address} field `debug_info`"
    return path


@dataclass(frozen=True)
class KbuildProcess:
    """One run of the Kbuild driver (`kernel_rules.domain.build.kbuild <command>`) on `source`.

    `args` follow the common ones (tarball, cache, arch, jobs); `input_digest` holds the files
    they name. The unpacked source and the warm trees come from the named cache `kernel_rules`.
    """

    command: str  # base | configure | build
    source: LinuxSource
    arch: str
    args: Tuple[str, ...]
    input_digest: Digest
    description: str
    output_files: Tuple[str, ...] = ()


@rule(level=LogLevel.DEBUG)
async def kbuild_process(request: KbuildProcess, build: KernelBuildSubsystem) -> Process:
    return await Get(Process, DomainProcess(
        "kernel_rules.domain.build.kbuild",
        (request.command,
         "--tarball", tarball_in_sandbox(request.source), "--sha256", request.source.sha256,
         "--cache", CACHE_DIR, "--arch", request.arch, "--jobs", "{pants_concurrency}",
         "--max-trees", str(build.max_warm_trees), "--out", "out", *request.args),
        request.description,
        kbuild_toolchain_request(),
        input_digest=request.input_digest,
        immutable_inputs=FrozenDict({"linux_source": request.source.digest}),
        output_files=request.output_files,
        uses_cache=True,
        concurrency_available=build.make_jobs(),
        timeout_seconds=build.build_timeout,
    ))


@dataclass(frozen=True)
class BaseConfigRequest:
    field_set: KernelImageFieldSet
    source: LinuxSource


@dataclass(frozen=True)
class BaseConfig:
    digest: Digest  # holds base/.config


@rule(desc="Make the base kernel config", level=LogLevel.DEBUG)
async def base_config(request: BaseConfigRequest) -> BaseConfig:
    fs = request.field_set
    if fs.base_config.value:
        hydrated = await Get(HydratedSources, HydrateSourcesRequest(fs.base_config))
        if not hydrated.snapshot.files:
            raise KernelConfigError(
                f"{fs.address}: field `base_config`: file {fs.base_config.value!r} not found")
        what = hydrated.snapshot.files[0]
        contents = await Get(DigestContents, Digest, hydrated.snapshot.digest)
        try:
            _check_config_text(next(c.content for c in contents if c.path == what), what)
        except FragmentError as e:
            raise KernelConfigError(f"{fs.address}: field `base_config`: {e}") from None
        args, inputs = ("--base-config", what), hydrated.snapshot.digest
    else:
        args, inputs, what = ("--base", fs.base.value), EMPTY_DIGEST, fs.base.value
    result = await Get(FallibleProcessResult, KbuildProcess(
        "base", request.source, fs.arch.value, args, inputs,
        f"Make base config {what} ({request.source.address})"))
    if result.exit_code != 0:
        raise KernelBuildError(
            f"{fs.address}: making the base config {what!r} failed (exit code "
            f"{result.exit_code}):\n" + error_tail(result))
    return BaseConfig(await Get(Digest, AddPrefix(
        await Get(Digest, RemovePrefix(result.output_digest, "out")), "base")))


@rule(desc="Configure kernel", level=LogLevel.DEBUG)
async def configure_kernel(request: KernelConfigRequest) -> KernelConfig:
    fs = request.field_set
    fragments, fragment_paths = await _fragment_digest(fs)
    source = await Get(LinuxSource, LinuxSourceRequest(fs.source.value or "", fs.address))
    base = await Get(BaseConfig, BaseConfigRequest(fs, source))
    args = ["--base-config", "base/.config"]
    for path in fragment_paths:
        args += ["--fragment", f"{_fragment_name(fs, path)}={path}"]
    result = await Get(FallibleProcessResult, KbuildProcess(
        "configure", source, fs.arch.value, tuple(args),
        await Get(Digest, MergeDigests([base.digest, fragments])),
        f"Configure kernel {fs.address} ({fs.base_config.value or fs.base.value}"
        f" + {len(fragment_paths)} fragments)"))
    report = user_error(result)
    if report is not None:
        if "error" in report:
            raise KernelConfigError(f"{fs.address}: field `fragments`: {report['error']}")
        if "host_paths" in report:
            raise KernelConfigError(
                f"{fs.address}: the final configuration names files outside the kernel tree:\n  "
                + "\n  ".join(report["host_paths"]))
        raise KernelConfigError(
            f"{fs.address}: {len(report['violations'])} requested config value(s) did not "
            "survive `make olddefconfig`:\n  " + "\n  ".join(report["violations"])
        )
    if result.exit_code != 0:
        raise KernelBuildError(
            f"{fs.address}: configuring the kernel failed (exit code {result.exit_code}):\n"
            + error_tail(result)
        )
    config = await Get(Digest, RemovePrefix(result.output_digest, "out"))
    return KernelConfig(fs.address, source, fs.arch.value, config)


# ---------------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelBuildRequest:
    config: KernelConfig


@dataclass(frozen=True)
class KernelBuild:
    """The build's artifacts, each at the top of `digest`: see ARTIFACTS."""

    address: Address
    digest: Digest
    stats: Digest  # build-stats.json: objects compiled, total, seconds (not reproducible)


@rule(desc="Build kernel", level=LogLevel.DEBUG)
async def build_kernel(request: KernelBuildRequest) -> KernelBuild:
    config = request.config
    config_file = await Get(Digest, AddPrefix(config.digest, "input"))
    result = await Get(FallibleProcessResult, KbuildProcess(
        "build", config.source, config.arch,
        ("--config", "input/.config", "--stats", "build-stats.json"), config_file,
        f"Build kernel {config.address} (Kbuild in a warm tree)",
        output_files=("build-stats.json",)))
    report = user_error(result)
    if report is not None:
        raise KernelConfigError(f"{config.address}: {report['error']}")
    if result.exit_code != 0:
        raise KernelBuildError(
            f"{config.address}: the kernel build failed (exit code {result.exit_code}); "
            "Kbuild's output tail:\n" + error_tail(result)
        )
    artifacts, stats = await MultiGet(
        Get(Digest, DigestSubset(result.output_digest, PathGlobs(["out/**"]))),
        Get(Digest, DigestSubset(result.output_digest, PathGlobs(["build-stats.json"]))),
    )
    return KernelBuild(config.address, await Get(Digest, RemovePrefix(artifacts, "out")), stats)


# ---------------------------------------------------------------------------------------------
# package
# ---------------------------------------------------------------------------------------------


@rule(desc="Package kernel image")
async def package_kernel_image(field_set: KernelImageFieldSet) -> BuiltPackage:
    out_dir = (await Get(OutputDir, OutputDirRequest(field_set.address, field_set.output_path))).path
    config = await Get(KernelConfig, KernelConfigRequest(field_set))
    built = await Get(KernelBuild, KernelBuildRequest(config))
    digest = await Get(Digest, AddPrefix(built.digest, out_dir))
    return BuiltPackage(
        digest,
        tuple(BuiltPackageArtifact(os.path.join(out_dir, name)) for name in ARTIFACTS),
    )


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, KernelImageFieldSet)]
