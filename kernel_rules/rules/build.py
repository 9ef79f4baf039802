"""`kernel_image`: a checked `.config` -> Kbuild in a warm tree -> the packaged artifacts."""

from __future__ import annotations

import os

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.engine.fs import AddPrefix, Digest, DigestSubset, PathGlobs, RemovePrefix
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from kernel_rules.rules.kbuild import KbuildProcess, KernelBuildError, KernelConfigError
from kernel_rules.rules.process import error_tail, user_error
from kernel_rules.rules.types import (
    KernelBuild,
    KernelBuildRequest,
    KernelConfig,
    KernelConfigRequest,
    OutputDir,
    OutputDirRequest,
)
from kernel_rules.targets.kernel_image import KernelImageFieldSet

ARTIFACTS = (
    "bzImage",
    "vmlinux",
    "System.map",
    "config",
    "defconfig",
    "sizes.json",
    "layout.json",
    "volatility3-isf.json",
)


@rule(desc="Build kernel", level=LogLevel.DEBUG)
async def build_kernel(request: KernelBuildRequest) -> KernelBuild:
    config = request.config
    config_file = await Get(Digest, AddPrefix(config.digest, "input"))
    result = await Get(
        FallibleProcessResult,
        KbuildProcess(
            "build",
            config.source,
            config.arch,
            ("--config", "input/.config", "--stats", "build-stats.json", *config.layout.args()),
            config_file,
            f"Build kernel {config.address} (Kbuild in a warm tree)",
            output_files=("build-stats.json",),
        ),
    )
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


@rule(desc="Package kernel image")
async def package_kernel_image(field_set: KernelImageFieldSet) -> BuiltPackage:
    out_dir = (
        await Get(OutputDir, OutputDirRequest(field_set.address, field_set.output_path))
    ).path
    config = await Get(KernelConfig, KernelConfigRequest(field_set))
    built = await Get(KernelBuild, KernelBuildRequest(config))
    digest = await Get(Digest, AddPrefix(built.digest, out_dir))
    return BuiltPackage(
        digest,
        tuple(BuiltPackageArtifact(os.path.join(out_dir, name)) for name in ARTIFACTS),
    )


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, KernelImageFieldSet)]
