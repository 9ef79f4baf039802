"""`kernel_baseline` and `app_profile`: trace under QEMU -> map -> config set -> package."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Optional, Tuple

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField, PackageFieldSet
from pants.engine.addresses import Address, UnparsedAddressInputs
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, CreateDigest, Digest, DigestContents, DigestSubset, FileContent, MergeDigests, PathGlobs, RemovePrefix, Snapshot
from pants.engine.process import FallibleProcessResult, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import HydratedSources, HydrateSourcesRequest, Target, Targets
from pants.engine.unions import UnionRule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from kernel_rules.domain.guest.app_check import failure_details, verdict, workload_report
from kernel_rules.domain.guest.init import render_app_init
from kernel_rules.domain.guest.qemu import CHECK_PARAM
from kernel_rules.rules.boot import QEMU, BootInitramfs, BootInitramfsRequest
from kernel_rules.rules.kernel import (
    KernelBuild,
    KernelBuildRequest,
    KernelConfig,
    KernelConfigRequest,
    KernelImageFieldSet,
)
from kernel_rules.rules.process import CACHE_DIR, DomainProcess, error_tail, tool_path
from kernel_rules.rules.source import tarball_in_sandbox
from kernel_rules.rules.toolchain import ToolchainRequest
from kernel_rules.prebuilt_target_types import PrebuiltImageDebField
from kernel_rules.rules.prebuilt import (
    PACKAGES_DIR, GuestModules, ModulesRequest, PrebuiltKernel, PrebuiltKernelRequest)
from kernel_rules.target_types import KernelDebugInfoField, KernelSourceField
from kernel_rules.trace_target_types import (
    AppBaselineField,
    AppBinariesField,
    AppFilesField,
    AppProgramsField,
    AppSuccessField,
    AppWorkloadField,
    BaselineBootScriptField,
    BaselineCmdlineField,
    BaselineKernelField,
    BaselineModulesField,
    MachineCpusField,
    MachineDevicesField,
    MachineMemoryField,
    MachineTypeField,
    TraceTimeoutField,
)
from kernel_rules.rules.output_paths import OutputDir, OutputDirRequest



class TraceError(Exception):
    """A traced guest failed, or a trace target is declared wrongly."""


@dataclass(frozen=True)
class Machine:
    machine: str
    cpus: int
    memory: str
    devices: Tuple[str, ...]
    cmdline: str

    def process_args(self) -> list:
        """The machine as arguments of the tracer and app-check programs (each `--name=value`,
        so that a value starting with `-` is never taken for an option)."""
        out = [f"--machine={self.machine}", f"--cpus={self.cpus}", f"--memory={self.memory}"]
        return out + [f"--device={dev}" for dev in self.devices]

    def digest_text(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


@dataclass(frozen=True)
class BaselineFieldSet(PackageFieldSet):
    required_fields = (BaselineKernelField,)

    kernel: BaselineKernelField
    machine: MachineTypeField
    cpus: MachineCpusField
    memory: MachineMemoryField
    devices: MachineDevicesField
    cmdline: BaselineCmdlineField
    modules: BaselineModulesField
    boot_script: BaselineBootScriptField
    timeout: TraceTimeoutField
    output_path: OutputPathField

    def machine_description(self) -> Machine:
        return Machine(self.machine.value, self.cpus.value, self.memory.value,
                       tuple(self.devices.value or ()), self.cmdline.value)


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


async def _one_target(spec: str, owner: Address, field: str, want: type, kind: str) -> Target:
    targets = await Get(Targets, UnparsedAddressInputs(
        [spec], owning_address=owner, description_of_origin=f"the `{field}` field of {owner}"))
    tgt = targets[0]
    if not tgt.has_field(want):
        raise TraceError(f"{owner}: field `{field}` must name a `{kind}` target, but "
                         f"{tgt.address} is a `{tgt.alias}`.")
    return tgt


@dataclass(frozen=True)
class TraceKernel:
    """The trace kernel of a baseline: its build (or a prebuilt kernel's files in the same
    shape), final config, the machine to boot it on, and the modules its guests load."""

    baseline: Address
    config: KernelConfig
    build: KernelBuild
    machine: Machine
    timeout: int
    prebuilt: Optional[PrebuiltKernel] = None
    modules: GuestModules = GuestModules(EMPTY_DIGEST)


@rule(desc="Resolve a baseline's trace kernel")
async def trace_kernel(fs: BaselineFieldSet) -> TraceKernel:
    targets = await Get(Targets, UnparsedAddressInputs(
        [fs.kernel.value], owning_address=fs.address,
        description_of_origin=f"the `kernel` field of {fs.address}"))
    tgt = targets[0]
    modules = tuple(fs.modules.value or ())
    if tgt.has_field(PrebuiltImageDebField):
        prebuilt = await Get(PrebuiltKernel, PrebuiltKernelRequest(tgt))
        guest_modules = await Get(GuestModules, ModulesRequest(prebuilt, modules, fs.address))
        return TraceKernel(fs.address, prebuilt.config, prebuilt.build, fs.machine_description(),
                           fs.timeout.value, prebuilt, guest_modules)
    if not tgt.has_field(KernelSourceField):
        raise TraceError(f"{fs.address}: field `kernel` must name a `kernel_image` or a "
                         f"`prebuilt_kernel` target, but {tgt.address} is a `{tgt.alias}`.")
    if not tgt[KernelDebugInfoField].value:
        raise TraceError(f"{fs.address}: field `kernel`: {tgt.address} must set `debug_info=True`"
                         " (tracing maps addresses to source lines through DWARF).")
    if modules:
        raise TraceError(f"{fs.address}: field `modules` needs a `prebuilt_kernel` trace kernel; "
                         f"{tgt.address} is a `kernel_image`, built without loadable modules.")
    config = await Get(KernelConfig, KernelConfigRequest(KernelImageFieldSet.create(tgt)))
    build = await Get(KernelBuild, KernelBuildRequest(config))
    return TraceKernel(fs.address, config, build, fs.machine_description(), fs.timeout.value)


@dataclass(frozen=True)
class TraceRequest:
    kernel: TraceKernel
    initramfs: Digest  # holds initramfs.cpio.gz
    mode: str  # boot | app
    target: Address
    timeout: int


@dataclass(frozen=True)
class TraceResult:
    digest: Digest  # trace/addresses.txt, trace/trace.json, trace/console.log (+ workload.log)
    console: str
    trace_json_text: str

    @property
    def trace_json(self) -> dict:
        return json.loads(self.trace_json_text)


@rule(desc="Trace a guest under QEMU", level=LogLevel.DEBUG)
async def run_trace(request: TraceRequest) -> TraceResult:
    m = request.kernel.machine
    kernel = await Get(Digest, DigestSubset(request.kernel.build.digest, PathGlobs(["bzImage"])))
    argv = [request.mode, "--qemu", tool_path(QEMU), "--kernel", "bzImage", "--initrd", "initramfs.cpio.gz",
            "--cmdline=" + f"{m.cmdline} nokaslr" + (f" {CHECK_PARAM}" if request.mode == "boot" else ""),
            *m.process_args(), "--timeout", str(request.timeout), "--out", "trace"]
    result = await Get(FallibleProcessResult, DomainProcess(
        "kernel_rules.domain.trace.tracer",
        tuple(argv),
        f"Trace {request.target} under QEMU ({request.mode})",
        ToolchainRequest((QEMU,), "tracing"),
        input_digest=await Get(Digest, MergeDigests([kernel, request.initramfs])),
        output_directories=("trace",),
        timeout_seconds=request.timeout + 120,
    ))
    if result.exit_code != 0:
        raise TraceError(f"{request.target}: {error_tail(result)}")
    contents = {c.path: c.content for c in await Get(DigestContents, Digest, result.output_digest)}
    return TraceResult(result.output_digest, contents["trace/console.log"].decode(errors="replace"),
                       contents["trace/trace.json"].decode())


@dataclass(frozen=True)
class MapRequest:
    kernel: TraceKernel
    trace: TraceResult
    kind: str
    target: Address
    workload_sha256: str = ""


@dataclass(frozen=True)
class ConfigSet:
    digest: Digest  # config-set.json, summary.md
    sha256: str


@rule(desc="Map a trace to a config set", level=LogLevel.DEBUG)
async def map_trace(request: MapRequest) -> ConfigSet:
    k = request.kernel
    config_contents = await Get(DigestContents, Digest, k.config.digest)
    vmlinux_and_config = await Get(Digest, DigestSubset(k.build.digest, PathGlobs(["vmlinux", "config"])))
    immutable = {"linux_source": k.config.source.digest}
    prebuilt_args: list = []
    if k.prebuilt is not None:
        immutable[PACKAGES_DIR] = k.prebuilt.packages
        prebuilt_args = ["--prefix", k.prebuilt.dwarf_prefix, "--debug-deb",
                         k.prebuilt.debug_deb(), "--debug-sha256", k.prebuilt.debug_sha256,
                         "--release", k.prebuilt.release]
    traced_on = {
        "source_sha256": k.config.source.sha256,
        "trace_config_sha256": hashlib.sha256(config_contents[0].content).hexdigest(),
        "machine_sha256": hashlib.sha256(k.machine.digest_text().encode()).hexdigest(),
        "workload_sha256": request.workload_sha256,
    }
    result = await Get(FallibleProcessResult, DomainProcess(
        "kernel_rules.domain.map.mapper",
        ("--tarball", tarball_in_sandbox(k.config.source), "--sha256", k.config.source.sha256,
         "--cache", CACHE_DIR, "--vmlinux", "vmlinux", "--config", "config",
         "--addresses", "trace/addresses.txt", "--trace", "trace/trace.json",
         "--kind", request.kind, "--target", str(request.target),
         "--traced-on", json.dumps(traced_on, sort_keys=True), *prebuilt_args, "--out", "out"),
        f"Map the trace of {request.target} to a config set",
        ToolchainRequest(("addr2line", "gcc", "tar", "xz"), "mapping traces"),
        input_digest=await Get(Digest, MergeDigests([vmlinux_and_config, request.trace.digest])),
        immutable_inputs=FrozenDict(immutable),
        uses_cache=True,
    ))
    if result.exit_code != 0:
        raise TraceError(f"{request.target}: mapping the trace failed:\n"
                         + error_tail(result))
    out = await Get(Digest, RemovePrefix(result.output_digest, "out"))
    contents = {c.path: c.content for c in await Get(DigestContents, Digest, out)}
    return ConfigSet(out, hashlib.sha256(contents["config-set.json"]).hexdigest())


async def _package(trace: TraceResult, out_dir: str,
                   config_set: ConfigSet, image: Digest = EMPTY_DIGEST) -> BuiltPackage:
    """dist/<dir>/: config-set.json, summary.md, the traced guest's console.log and, for an app,
    its workload's own output workload.log and its guest image initramfs.cpio.gz."""
    logs = await Get(Snapshot, Digest, await Get(Digest, RemovePrefix(await Get(Digest, DigestSubset(
        trace.digest, PathGlobs(["trace/console.log", "trace/workload.log"]))), "trace")))
    merged = await Get(Digest, MergeDigests([config_set.digest, logs.digest, image]))
    prefixed = await Get(Digest, AddPrefix(merged, out_dir))
    names = ("summary.md", *sorted(logs.files)) + (
        ("initramfs.cpio.gz",) if image != EMPTY_DIGEST else ())
    return BuiltPackage(prefixed, (
        BuiltPackageArtifact(f"{out_dir}/config-set.json",
                             extra_log_lines=(f"config set sha256 {config_set.sha256}",)),
        *(BuiltPackageArtifact(f"{out_dir}/{n}") for n in names),
    ))


# ---------------------------------------------------------------------------------------------
# kernel_baseline
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TracedBaseline:
    """A baseline's trace kernel, boot trace and config set."""

    kernel: TraceKernel
    trace: TraceResult
    config_set: ConfigSet


@rule(desc="Trace a baseline")
async def traced_baseline(fs: BaselineFieldSet) -> TracedBaseline:
    kernel = await Get(TraceKernel, BaselineFieldSet, fs)
    request = BootInitramfsRequest()
    if fs.boot_script.value:
        script = await Get(HydratedSources, HydrateSourcesRequest(fs.boot_script))
        if not script.snapshot.files:
            raise TraceError(f"{fs.address}: field `boot_script`: {fs.boot_script.value!r} not found")
        request = BootInitramfsRequest(script.snapshot.files[0], script.snapshot.digest)
    request = BootInitramfsRequest(request.boot_script, request.digest, kernel.modules.digest)
    initramfs = await Get(BootInitramfs, BootInitramfsRequest, request)
    trace = await Get(TraceResult, TraceRequest(kernel, initramfs.digest, "boot", fs.address,
                                                kernel.timeout))
    config_set = await Get(ConfigSet, MapRequest(kernel, trace, "baseline", fs.address))
    return TracedBaseline(kernel, trace, config_set)


@rule(desc="Package a baseline config set")
async def package_baseline(fs: BaselineFieldSet) -> BuiltPackage:
    out_dir = (await Get(OutputDir, OutputDirRequest(fs.address, fs.output_path))).path
    traced = await Get(TracedBaseline, BaselineFieldSet, fs)
    return await _package(traced.trace, out_dir, traced.config_set)


# ---------------------------------------------------------------------------------------------
# app_profile
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppInitramfsRequest:
    fs: AppProfileFieldSet
    modules: GuestModules = GuestModules(EMPTY_DIGEST)  # the baseline's


@dataclass(frozen=True)
class AppInitramfs:
    digest: Digest  # initramfs.cpio.gz
    sha256: str


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
    init = await Get(Digest, CreateDigest([FileContent(
        "init", render_app_init(str(fs.address), workload_name).encode(), is_executable=True)]))
    argv = ["--busybox", tool_path("busybox"), "--gcc", tool_path("gcc"),
            "--init", "init", "--out", "initramfs.cpio.gz",
            "--marker-source", "kernel_rules/domain/guest/window_marker.c",
            "--file", workload_path, f"app/{workload_name}"]
    base = fs.address.spec_path
    for f in files.snapshot.files:
        rel = f[len(base) + 1:] if base and f.startswith(base + "/") else f
        argv += ["--file", f, f"app/{rel}"]
    for p in programs.snapshot.files:
        argv += ["--program", p]
    if request.modules.digest != EMPTY_DIGEST:
        argv += ["--tree", "guest_modules"]
    for b in fs.binaries.value or ():
        if not b.startswith("/"):
            raise TraceError(f"{fs.address}: field `binaries`: {b!r} must be an absolute path")
        argv += ["--binary", b]
    result = await Get(FallibleProcessResult, DomainProcess(
        "kernel_rules.domain.guest.initramfs",
        tuple(argv),
        f"Build the initramfs of {fs.address}",
        ToolchainRequest(("busybox", "gcc"), "application initramfs images"),
        input_digest=await Get(Digest, MergeDigests([
            init, workload.snapshot.digest, files.snapshot.digest, programs.snapshot.digest,
            await Get(Digest, AddPrefix(request.modules.digest, "guest_modules"))])),
        output_directories=(),
        output_files=("initramfs.cpio.gz",),
        # Host binaries are not Pants inputs: rebuild every run; the bytes key everything after.
        cache_scope=ProcessCacheScope.PER_SESSION,
        remote_cache_first=False,
    ))
    if result.exit_code != 0:
        raise TraceError(f"{fs.address}: building the initramfs failed: "
                         + error_tail(result))
    content = (await Get(DigestContents, Digest, result.output_digest))[0].content
    return AppInitramfs(result.output_digest, hashlib.sha256(content).hexdigest())


@dataclass(frozen=True)
class TracedApp:
    """An app profile's baseline, guest image, window trace and config set."""

    baseline: Address
    kernel: TraceKernel
    initramfs: AppInitramfs
    trace: TraceResult
    config_set: ConfigSet


async def app_baseline(fs: AppProfileFieldSet) -> BaselineFieldSet:
    baseline_tgt = await _one_target(fs.baseline.value, fs.address, "baseline",
                                     BaselineKernelField, "kernel_baseline")
    return BaselineFieldSet.create(baseline_tgt)


@rule(desc="Trace an app profile")
async def traced_app(fs: AppProfileFieldSet) -> TracedApp:
    baseline = await app_baseline(fs)
    kernel = await Get(TraceKernel, BaselineFieldSet, baseline)
    initramfs = await Get(AppInitramfs, AppInitramfsRequest(fs, kernel.modules))
    trace = await Get(TraceResult, TraceRequest(kernel, initramfs.digest, "app", fs.address,
                                                fs.timeout.value))
    failed = workload_verdict(trace, fs.success.value)
    if failed:
        raise TraceError(f"{fs.address}: {failed}")
    config_set = await Get(ConfigSet, MapRequest(kernel, trace, "app", fs.address, initramfs.sha256))
    return TracedApp(baseline.address, kernel, initramfs, trace, config_set)


@rule(desc="Package an app config set")
async def package_app_profile(fs: AppProfileFieldSet) -> BuiltPackage:
    out_dir = (await Get(OutputDir, OutputDirRequest(fs.address, fs.output_path))).path
    traced = await Get(TracedApp, AppProfileFieldSet, fs)
    return await _package(traced.trace, out_dir, traced.config_set,
                          traced.initramfs.digest)


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
