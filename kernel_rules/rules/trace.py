"""`kernel_baseline` and `app_profile`: guest image -> trace under QEMU -> config set (rules.map) -> package."""

from __future__ import annotations

import hashlib
from typing import Optional, Tuple

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.engine.addresses import Address, UnparsedAddressInputs
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    EMPTY_DIGEST,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    Snapshot,
)
from pants.engine.process import FallibleProcessResult, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import HydrateSourcesRequest, HydratedSources, Target, Targets
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from kernel_rules.domain.guest.protocol import verdict, workload_report
from kernel_rules.domain.guest.app_check import failure_details
from kernel_rules.domain.guest.init import BOOT_SCRIPT, render_app_init
from kernel_rules.domain.guest.protocol import CHECK_PARAM
from kernel_rules.rules.boot import QEMU
from kernel_rules.rules.process import DomainProcess, error_tail, tool_path
from kernel_rules.rules.types import (
    AppInitramfs,
    AppInitramfsRequest,
    AppSyscalls,
    AppSyscallsRequest,
    BootInitramfs,
    BootInitramfsRequest,
    ConfigSet,
    GuestModules,
    KernelBuild,
    KernelBuildRequest,
    KernelConfig,
    KernelConfigRequest,
    MapRequest,
    ModulesRequest,
    OutputDir,
    OutputDirRequest,
    PrebuiltKernel,
    PrebuiltKernelRequest,
    ToolchainRequest,
    TraceKernel,
    TraceRequest,
    TraceResult,
    TracedApp,
    TracedBaseline,
)
from kernel_rules.targets.app_profile import AppProfileFieldSet
from kernel_rules.targets.baseline import BaselineFieldSet, BaselineKernelField
from kernel_rules.targets.kernel_image import (
    KernelDebugInfoField,
    KernelImageFieldSet,
    KernelSourceField,
)
from kernel_rules.targets.prebuilt import PrebuiltImageDebField


class TraceError(Exception):
    """A traced guest failed, or a trace target is declared wrongly."""


async def one_target(spec: str, owner: Address, field: str, want: type, kind: str) -> Target:
    targets = await Get(
        Targets,
        UnparsedAddressInputs(
            [spec], owning_address=owner, description_of_origin=f"the `{field}` field of {owner}"
        ),
    )
    tgt = targets[0]
    if not tgt.has_field(want):
        raise TraceError(
            f"{owner}: field `{field}` must name a `{kind}` target, but "
            f"{tgt.address} is a `{tgt.alias}`."
        )
    return tgt


@rule(desc="Resolve a baseline's trace kernel")
async def trace_kernel(fs: BaselineFieldSet) -> TraceKernel:
    targets = await Get(
        Targets,
        UnparsedAddressInputs(
            [fs.kernel.value],
            owning_address=fs.address,
            description_of_origin=f"the `kernel` field of {fs.address}",
        ),
    )
    tgt = targets[0]
    modules = tuple(fs.modules.value or ())
    if tgt.has_field(PrebuiltImageDebField):
        prebuilt = await Get(PrebuiltKernel, PrebuiltKernelRequest(tgt))
        guest_modules = await Get(GuestModules, ModulesRequest(prebuilt, modules, fs.address))
        return TraceKernel(
            fs.address,
            prebuilt.config,
            prebuilt.build,
            fs.machine_description(),
            fs.timeout.value,
            prebuilt,
            guest_modules,
        )
    if not tgt.has_field(KernelSourceField):
        raise TraceError(
            f"{fs.address}: field `kernel` must name a `kernel_image` or a "
            f"`prebuilt_kernel` target, but {tgt.address} is a `{tgt.alias}`."
        )
    if not tgt[KernelDebugInfoField].value:
        raise TraceError(
            f"{fs.address}: field `kernel`: {tgt.address} must set `debug_info=True`"
            " (tracing maps addresses to source lines through DWARF)."
        )
    if modules:
        raise TraceError(
            f"{fs.address}: field `modules` needs a `prebuilt_kernel` trace kernel; "
            f"{tgt.address} is a `kernel_image`, built without loadable modules."
        )
    config = await Get(KernelConfig, KernelConfigRequest(KernelImageFieldSet.create(tgt)))
    build = await Get(KernelBuild, KernelBuildRequest(config))
    return TraceKernel(fs.address, config, build, fs.machine_description(), fs.timeout.value)


@rule(desc="Trace a guest under QEMU", level=LogLevel.DEBUG)
async def run_trace(request: TraceRequest) -> TraceResult:
    m = request.kernel.machine
    kernel = await Get(Digest, DigestSubset(request.kernel.build.digest, PathGlobs(["bzImage"])))
    argv = [
        request.mode,
        "--qemu",
        tool_path(QEMU),
        "--kernel",
        "bzImage",
        "--initrd",
        "initramfs.cpio.gz",
        "--cmdline="
        + f"{m.cmdline} nokaslr"
        + (f" {CHECK_PARAM}" if request.mode == "boot" else ""),
        *m.process_args(),
        "--timeout",
        str(request.timeout),
        "--out",
        "trace",
    ]
    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.trace.tracer",
            tuple(argv),
            f"Trace {request.target} under QEMU ({request.mode})",
            ToolchainRequest((QEMU,), "tracing"),
            input_digest=await Get(Digest, MergeDigests([kernel, request.initramfs])),
            output_directories=("trace",),
            timeout_seconds=request.timeout + 120,
        ),
    )
    if result.exit_code != 0:
        raise TraceError(f"{request.target}: {error_tail(result)}")
    contents = {c.path: c.content for c in await Get(DigestContents, Digest, result.output_digest)}
    return TraceResult(
        result.output_digest,
        contents["trace/console.log"].decode(errors="replace"),
        contents["trace/trace.json"].decode(),
    )


async def _package(
    trace: TraceResult,
    out_dir: str,
    config_set: ConfigSet,
    image: Digest = EMPTY_DIGEST,
    syscalls: Digest = EMPTY_DIGEST,
    kernel_layout: Digest = EMPTY_DIGEST,
) -> BuiltPackage:
    """dist/<dir>/: config-set.json, summary.md, the traced guest's console.log and, for an app,
    its workload's own output workload.log, its guest image initramfs.cpio.gz and its syscalls
    (syscalls.json, syscalls.md, syscall-kconfig.json: rules.syscalls); for a baseline, its trace
    kernel's layout.json (built or imported: the only place an imported kernel's is written)."""
    logs = await Get(
        Snapshot,
        Digest,
        await Get(
            Digest,
            RemovePrefix(
                await Get(
                    Digest,
                    DigestSubset(
                        trace.digest, PathGlobs(["trace/console.log", "trace/workload.log"])
                    ),
                ),
                "trace",
            ),
        ),
    )
    merged = await Get(
        Digest, MergeDigests([config_set.digest, logs.digest, image, syscalls, kernel_layout])
    )
    prefixed = await Get(Digest, AddPrefix(merged, out_dir))
    names = ("summary.md", *sorted(logs.files)) + (
        ("initramfs.cpio.gz",) if image != EMPTY_DIGEST else ()
    )
    if syscalls != EMPTY_DIGEST:
        names += ("syscalls.json", "syscalls.md", "syscall-kconfig.json")
    if kernel_layout != EMPTY_DIGEST:
        names += ("layout.json",)
    return BuiltPackage(
        prefixed,
        (
            BuiltPackageArtifact(
                f"{out_dir}/config-set.json",
                extra_log_lines=(f"config set sha256 {config_set.sha256}",),
            ),
            *(BuiltPackageArtifact(f"{out_dir}/{n}") for n in names),
        ),
    )


async def baseline_boot_script(fs: BaselineFieldSet) -> Tuple[Optional[str], Digest]:
    """The baseline's `boot_script` (its path and a digest holding it), or (None, EMPTY_DIGEST)."""
    if not fs.boot_script.value:
        return None, EMPTY_DIGEST
    script = await Get(HydratedSources, HydrateSourcesRequest(fs.boot_script))
    if not script.snapshot.files:
        raise TraceError(f"{fs.address}: field `boot_script`: {fs.boot_script.value!r} not found")
    return script.snapshot.files[0], script.snapshot.digest


@rule(desc="Trace a baseline")
async def traced_baseline(fs: BaselineFieldSet) -> TracedBaseline:
    kernel = await Get(TraceKernel, BaselineFieldSet, fs)
    request = BootInitramfsRequest()
    script, digest = await baseline_boot_script(fs)
    request = BootInitramfsRequest(script, digest, kernel.modules.digest)
    initramfs = await Get(BootInitramfs, BootInitramfsRequest, request)
    trace = await Get(
        TraceResult, TraceRequest(kernel, initramfs.digest, "boot", fs.address, kernel.timeout)
    )
    config_set = await Get(ConfigSet, MapRequest(kernel, trace, "baseline", fs.address))
    return TracedBaseline(kernel, trace, config_set)


@rule(desc="Package a baseline config set")
async def package_baseline(fs: BaselineFieldSet) -> BuiltPackage:
    out_dir = (await Get(OutputDir, OutputDirRequest(fs.address, fs.output_path))).path
    traced = await Get(TracedBaseline, BaselineFieldSet, fs)
    layout = await Get(Digest, DigestSubset(traced.kernel.build.digest, PathGlobs(["layout.json"])))
    return await _package(traced.trace, out_dir, traced.config_set, kernel_layout=layout)


@rule(desc="Build an application initramfs", level=LogLevel.DEBUG)
async def app_initramfs(request: AppInitramfsRequest) -> AppInitramfs:
    fs = request.fs
    workload, files, programs = await MultiGet(
        Get(HydratedSources, HydrateSourcesRequest(fs.workload)),
        Get(HydratedSources, HydrateSourcesRequest(fs.files)),
        Get(HydratedSources, HydrateSourcesRequest(fs.programs)),
    )
    workload_path = workload.snapshot.files[0]
    workload_name = workload_path.rsplit("/", 1)[-1]
    init = await Get(
        Digest,
        CreateDigest(
            [
                FileContent(
                    "init",
                    render_app_init(str(fs.address), workload_name).encode(),
                    is_executable=True,
                )
            ]
        ),
    )
    argv = [
        "--busybox",
        tool_path("busybox"),
        "--gcc",
        tool_path("gcc"),
        "--init",
        "init",
        "--out",
        "initramfs.cpio.gz",
        "--marker-source",
        "kernel_rules/domain/guest/window_marker.c",
        "--file",
        workload_path,
        f"app/{workload_name}",
    ]
    base = fs.address.spec_path
    for f in files.snapshot.files:
        rel = f[len(base) + 1 :] if base and f.startswith(base + "/") else f
        argv += ["--file", f, f"app/{rel}"]
    for p in programs.snapshot.files:
        argv += ["--program", p]
    if request.modules.digest != EMPTY_DIGEST:
        argv += ["--tree", "guest_modules"]
    if request.boot_script:
        argv += ["--file", request.boot_script, BOOT_SCRIPT]
    for b in fs.binaries.value or ():
        if not b.startswith("/"):
            raise TraceError(f"{fs.address}: field `binaries`: {b!r} must be an absolute path")
        argv += ["--binary", b]
    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.guest.initramfs",
            tuple(argv),
            f"Build the initramfs of {fs.address}",
            ToolchainRequest(("busybox", "gcc"), "application initramfs images"),
            input_digest=await Get(
                Digest,
                MergeDigests(
                    [
                        init,
                        workload.snapshot.digest,
                        files.snapshot.digest,
                        programs.snapshot.digest,
                        request.boot_digest,
                        await Get(Digest, AddPrefix(request.modules.digest, "guest_modules")),
                    ]
                ),
            ),
            output_directories=(),
            output_files=("initramfs.cpio.gz",),
            # Host binaries are not Pants inputs: rebuild every run; the bytes key everything after.
            cache_scope=ProcessCacheScope.PER_SESSION,
            remote_cache_first=False,
        ),
    )
    if result.exit_code != 0:
        raise TraceError(f"{fs.address}: building the initramfs failed: " + error_tail(result))
    content = (await Get(DigestContents, Digest, result.output_digest))[0].content
    return AppInitramfs(result.output_digest, hashlib.sha256(content).hexdigest())


async def app_baseline(fs: AppProfileFieldSet) -> BaselineFieldSet:
    baseline_tgt = await one_target(
        fs.baseline.value, fs.address, "baseline", BaselineKernelField, "kernel_baseline"
    )
    return BaselineFieldSet.create(baseline_tgt)


@rule(desc="Trace an app profile")
async def traced_app(fs: AppProfileFieldSet) -> TracedApp:
    baseline = await app_baseline(fs)
    kernel = await Get(TraceKernel, BaselineFieldSet, baseline)
    script, digest = await baseline_boot_script(baseline)
    initramfs = await Get(AppInitramfs, AppInitramfsRequest(fs, kernel.modules, script, digest))
    trace = await Get(
        TraceResult, TraceRequest(kernel, initramfs.digest, "app", fs.address, fs.timeout.value)
    )
    failed = workload_verdict(trace, fs.success.value)
    if failed:
        raise TraceError(f"{fs.address}: {failed}")
    config_set = await Get(
        ConfigSet, MapRequest(kernel, trace, "app", fs.address, initramfs.sha256)
    )
    return TracedApp(baseline.address, kernel, initramfs, trace, config_set)


@rule(desc="Package an app config set")
async def package_app_profile(fs: AppProfileFieldSet) -> BuiltPackage:
    out_dir = (await Get(OutputDir, OutputDirRequest(fs.address, fs.output_path))).path
    traced = await Get(TracedApp, AppProfileFieldSet, fs)
    syscalls = await Get(AppSyscalls, AppSyscallsRequest(fs, traced))
    return await _package(
        traced.trace, out_dir, traced.config_set, traced.initramfs.digest, syscalls.digest
    )


def workload_verdict(trace: TraceResult, success: Optional[str]) -> str:
    """Empty if the workload passed, else why not, followed by the console tail and the
    workload's own output. The verdict comes from the guest's framed report of the workload
    alone (domain.guest.app_check), never from the rest of the console."""
    report = workload_report(trace.console)
    why = verdict(report, success)
    return f"{why}\n{failure_details(trace.console, report)}" if why else ""


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, BaselineFieldSet),
        UnionRule(PackageFieldSet, AppProfileFieldSet),
    ]
