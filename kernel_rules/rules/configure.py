"""`kernel_image` configuration: base config + fragments -> a checked `.config`."""

from __future__ import annotations

import os
from typing import List, Tuple

from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    EMPTY_DIGEST,
    FileContent,
    GlobMatchErrorBehavior,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import HydrateSourcesRequest, HydratedSources
from pants.util.logging import LogLevel

from kernel_rules.domain.kconfig.config_policy import check_requests
from kernel_rules.domain.kconfig.fragments import FragmentError, decode, parse_fragment
from kernel_rules.rules.kbuild import KbuildProcess, KernelBuildError, KernelConfigError
from kernel_rules.rules.process import error_tail, user_error
from kernel_rules.rules.types import (
    BaseConfig,
    BaseConfigRequest,
    KernelConfig,
    KernelConfigRequest,
    KernelLayoutSpec,
    LinuxSource,
    LinuxSourceRequest,
)
from kernel_rules.targets.kernel_image import KernelImageFieldSet

DEBUG_INFO_FRAGMENT = "CONFIG_DEBUG_KERNEL=y\nCONFIG_DEBUG_INFO_DWARF5=y\n"
EMBED_CONFIG_FRAGMENT = "CONFIG_IKCONFIG=y\n"
# Fragments made from boolean fields, applied after `fragments`: (file name, field, text).
FIELD_FRAGMENTS = (
    ("kernel_rules_debug_info.config", "debug_info", DEBUG_INFO_FRAGMENT),
    ("kernel_rules_embed_config.config", "embed_config", EMBED_CONFIG_FRAGMENT),
)


async def _fragment_digest(fs: KernelImageFieldSet) -> Tuple[Digest, List[str]]:
    """The fragment files (in field order, at their repo paths) plus the debug_info fragment,
    each validated line by line; returns the digest and the ordered repo paths."""
    paths = [
        os.path.normpath(os.path.join(fs.address.spec_path, f)) for f in fs.fragments.value or ()
    ]
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
    for name, field, text in FIELD_FRAGMENTS:
        if getattr(fs, field).value:
            extra = await Get(Digest, CreateDigest([FileContent(name, text.encode())]))
            digest = await Get(Digest, MergeDigests([digest, extra]))
            paths.append(name)
    return digest, paths


def _check_config_text(data: bytes, name: str) -> None:
    """Raise FragmentError (naming `name:line`) unless `data` is UTF-8 `.config` text whose
    values are all data and name no host file (fragments, `base_config`)."""
    violations = check_requests(parse_fragment(decode(data, name), name))
    if violations:
        raise FragmentError(violations[0].message())


def _fragment_name(fs: KernelImageFieldSet, path: str) -> str:
    for name, field, _ in FIELD_FRAGMENTS:
        if path == name:
            return f"{fs.address} field `{field}`"
    return path


@rule(desc="Make the base kernel config", level=LogLevel.DEBUG)
async def base_config(request: BaseConfigRequest) -> BaseConfig:
    fs = request.field_set
    if fs.base_config.value:
        hydrated = await Get(HydratedSources, HydrateSourcesRequest(fs.base_config))
        if not hydrated.snapshot.files:
            raise KernelConfigError(
                f"{fs.address}: field `base_config`: file {fs.base_config.value!r} not found"
            )
        what = hydrated.snapshot.files[0]
        contents = await Get(DigestContents, Digest, hydrated.snapshot.digest)
        try:
            _check_config_text(next(c.content for c in contents if c.path == what), what)
        except FragmentError as e:
            raise KernelConfigError(f"{fs.address}: field `base_config`: {e}") from None
        args, inputs = ("--base-config", what), hydrated.snapshot.digest
    else:
        args, inputs, what = ("--base", fs.base.value), EMPTY_DIGEST, fs.base.value
    result = await Get(
        FallibleProcessResult,
        KbuildProcess(
            "base",
            request.source,
            fs.arch.value,
            args,
            inputs,
            f"Make base config {what} ({request.source.address})",
        ),
    )
    if result.exit_code != 0:
        raise KernelBuildError(
            f"{fs.address}: making the base config {what!r} failed (exit code "
            f"{result.exit_code}):\n" + error_tail(result)
        )
    return BaseConfig(
        await Get(
            Digest, AddPrefix(await Get(Digest, RemovePrefix(result.output_digest, "out")), "base")
        )
    )


@rule(desc="Configure kernel", level=LogLevel.DEBUG)
async def configure_kernel(request: KernelConfigRequest) -> KernelConfig:
    fs = request.field_set
    fragments, fragment_paths = await _fragment_digest(fs)
    source = await Get(LinuxSource, LinuxSourceRequest(fs.source.value or "", fs.address))
    base = await Get(BaseConfig, BaseConfigRequest(fs, source))
    args = ["--base-config", "base/.config"]
    for path in fragment_paths:
        args += ["--fragment", f"{_fragment_name(fs, path)}={path}"]
    result = await Get(
        FallibleProcessResult,
        KbuildProcess(
            "configure",
            source,
            fs.arch.value,
            tuple(args),
            await Get(Digest, MergeDigests([base.digest, fragments])),
            f"Configure kernel {fs.address} ({fs.base_config.value or fs.base.value}"
            f" + {len(fragment_paths)} fragments)",
        ),
    )
    report = user_error(result)
    if report is not None:
        if "error" in report:
            raise KernelConfigError(f"{fs.address}: field `fragments`: {report['error']}")
        if "host_paths" in report:
            raise KernelConfigError(
                f"{fs.address}: the final configuration names files outside the kernel tree:\n  "
                + "\n  ".join(report["host_paths"])
            )
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
    layout = KernelLayoutSpec(fs.layout_fields.value or (), fs.layout_headers.value or ())
    return KernelConfig(fs.address, source, fs.arch.value, config, layout)


def rules():
    return collect_rules()
