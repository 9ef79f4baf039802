"""`prebuilt_kernel` -> verified packages -> the trace kernel's files; a baseline's modules."""

from __future__ import annotations

import json

from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    EMPTY_DIGEST,
    FileContent,
    FileEntry,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from kernel_rules.rules.process import CACHE_DIR, DomainProcess, error_tail
from kernel_rules.rules.source import SHA256_HEX, single_file, tarball_in_sandbox
from kernel_rules.rules.types import (
    PACKAGES_DIR,
    GuestModules,
    KernelBuild,
    KernelConfig,
    LinuxSource,
    LinuxSourceRequest,
    ModulesRequest,
    PrebuiltKernel,
    PrebuiltKernelRequest,
    ToolchainRequest,
)
from kernel_rules.targets.prebuilt import (
    PrebuiltDebugDebField,
    PrebuiltDebugSha256Field,
    PrebuiltImageDebField,
    PrebuiltImageSha256Field,
    PrebuiltSourceField,
)


TOOLS = ("addr2line", "dpkg-deb", "nm", "pahole", "size", "tar", "xz")


class PrebuiltKernelError(Exception):
    """A `prebuilt_kernel` whose packages are missing, fail their pins or do not fit."""


@rule(desc="Verify and unpack a prebuilt kernel")
async def prebuilt_kernel(request: PrebuiltKernelRequest) -> PrebuiltKernel:
    tgt = request.target
    source = await Get(LinuxSource, LinuxSourceRequest(tgt[PrebuiltSourceField].value, tgt.address))
    packages = []
    for field, sha_field, name in (
        (PrebuiltImageDebField, PrebuiltImageSha256Field, "image.deb"),
        (PrebuiltDebugDebField, PrebuiltDebugSha256Field, "debug.deb"),
    ):
        pinned = (tgt[sha_field].value or "").lower()
        if not SHA256_HEX.match(pinned):
            raise PrebuiltKernelError(
                f"{tgt.address}: field `{sha_field.alias}` must be 64 hex digits, got {pinned!r}."
            )
        found = await single_file(tgt[field])
        if found is None:
            raise PrebuiltKernelError(
                f"{tgt.address}: field `{field.alias}`: {tgt[field].value!r} does not exist. "
                "Fetch the pinned packages with `third_party/setup.sh --debian-cloud` "
                "(docs/debian-cloud.md)."
            )
        _, entry = found
        if entry.file_digest.fingerprint != pinned:
            raise PrebuiltKernelError(
                f"{tgt.address}: sha256 mismatch for {entry.path} (field `{field.alias}`):\n"
                f"  pinned: {pinned}\n  actual: {entry.file_digest.fingerprint}\n"
                "Re-fetch with `third_party/setup.sh --debian-cloud`, or update the pin."
            )
        packages.append(await Get(Digest, CreateDigest([FileEntry(name, entry.file_digest)])))
    packages_digest = await Get(Digest, MergeDigests(packages))
    debug_sha256 = tgt[PrebuiltDebugSha256Field].value.lower()

    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.prebuilt.debian",
            (
                "unpack",
                "--image-deb",
                f"{PACKAGES_DIR}/image.deb",
                "--debug-deb",
                f"{PACKAGES_DIR}/debug.deb",
                "--debug-sha256",
                debug_sha256,
                "--cache",
                CACHE_DIR,
                "--source-version",
                source.version,
                "--source-package-version",
                source.package_version,
                "--tarball",
                tarball_in_sandbox(source),
                "--tarball-sha256",
                source.sha256,
                "--out",
                "out",
            ),
            f"Unpack and measure the prebuilt kernel {tgt.address}",
            ToolchainRequest(TOOLS, "unpacking prebuilt kernels"),
            immutable_inputs=FrozenDict(
                {PACKAGES_DIR: packages_digest, "linux_source": source.digest}
            ),
            uses_cache=True,
            remote_cache_first=False,
        ),
    )
    if result.exit_code != 0:
        raise PrebuiltKernelError(
            f"{tgt.address}: " + error_tail(result).replace("kernel_rules: ", "")
        )
    files = await Get(Digest, RemovePrefix(result.output_digest, "out"))
    config_file, info_digest = await MultiGet(
        Get(Digest, DigestSubset(files, PathGlobs(["config"]))),
        Get(Digest, DigestSubset(files, PathGlobs(["prebuilt.json"]))),
    )
    info = json.loads((await Get(DigestContents, Digest, info_digest))[0].content)
    config_contents = (await Get(DigestContents, Digest, config_file))[0].content
    dot_config = await Get(Digest, CreateDigest([FileContent(".config", config_contents)]))
    return PrebuiltKernel(
        tgt.address,
        source,
        packages_digest,
        debug_sha256,
        info["release"],
        info["dwarf_prefix"],
        KernelConfig(tgt.address, source, "x86_64", dot_config),
        KernelBuild(tgt.address, files, EMPTY_DIGEST),
    )


@rule(desc="Gather a baseline's kernel modules")
async def guest_modules(request: ModulesRequest) -> GuestModules:
    if not request.modules:
        return GuestModules(EMPTY_DIGEST)
    args = ["modules", "--image-deb", request.kernel.image_deb(), "--out", "out"]
    for name in request.modules:
        args += ["--module", name]
    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.prebuilt.debian",
            tuple(args),
            f"Gather the kernel modules of {request.owner}",
            ToolchainRequest(TOOLS, "gathering kernel modules"),
            immutable_inputs=FrozenDict({PACKAGES_DIR: request.kernel.packages}),
            level=LogLevel.DEBUG,
            remote_cache_first=False,
        ),
    )
    if result.exit_code != 0:
        raise PrebuiltKernelError(
            f"{request.owner}: field `modules`: " + error_tail(result).replace("kernel_rules: ", "")
        )
    return GuestModules(await Get(Digest, RemovePrefix(result.output_digest, "out")))


def rules():
    return collect_rules()
