"""The request and result types that flow between the rules, stage by stage.

A rule takes one request and returns one result; `await Get(Result, Request(...))` is the only way
one stage asks another for something. Digests are the data; every result names what its digest
holds. The flow, for a `tailored_kernel`:

    LinuxSourceRequest -> LinuxSource                         (rules.source: the pinned tarball)
    ToolchainRequest -> Toolchain                             (rules.toolchain: host tools, fingerprinted)
    KernelConfigRequest -> KernelConfig                       (rules.configure: base + fragments, checked)
    KernelBuildRequest -> KernelBuild                         (rules.build: Kbuild in a warm tree)
    BootInitramfsRequest / AppInitramfsRequest -> ...Initramfs (rules.boot, rules.trace: guest images)
    TraceRequest -> TraceResult                               (rules.trace: QEMU with the tracer)
    MapRequest -> ConfigSet                                   (rules.map: addresses -> config set)
    TracedBaseline, TracedApp                                 (rules.trace: per target)
    ComposeRequest -> ComposedConfig                          (rules.compose: MaxSAT + olddefconfig)
    VerifiedBaselineRequest -> VerifiedBaseline               (rules.minimise: the baseline's tries)
    MinimiseRequest -> Minimised                              (rules.minimise: verified tries)
    AppCheckRequest -> AppCheck                               (rules.boot: every app's workload)
    TailoredKernelFieldSet -> TailoredKernel                  (rules.tailored: the whole kernel)
    KernelOutputsRequest -> KernelOutputs -> ExplainRequest -> Explanation
                                                              (rules.explain: kernel-explain/-diff)

Prebuilt kernels (`PrebuiltKernelRequest -> PrebuiltKernel`, `ModulesRequest -> GuestModules`) stand
in for a built trace kernel; `OutputDirRequest -> OutputDir` checks a package's dist/ directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Optional, Tuple

from pants.core.goals.package import OutputPathField
from pants.engine.addresses import Address
from pants.engine.fs import Digest, EMPTY_DIGEST
from pants.engine.process import FallibleProcessResult, ProcessCacheScope
from pants.engine.target import Target
from pants.util.frozendict import FrozenDict

from kernel_rules.targets.app_profile import AppProfileFieldSet
from kernel_rules.targets.kernel_image import KernelImageFieldSet
from kernel_rules.targets.tailored import TailoredKernelFieldSet


@dataclass(frozen=True)
class LinuxSourceRequest:
    """The `source` field of `owner`: an address (relative addresses resolve from `owner`)."""

    spec: str
    owner: Address


@dataclass(frozen=True)
class LinuxSource:
    address: Address
    digest: Digest  # holds exactly `filename`
    filename: str
    sha256: str
    version: str
    package_version: str = ""


@dataclass(frozen=True)
class ToolchainRequest:
    tools: Tuple[str, ...]
    purpose: str  # e.g. "kernel builds", for error messages


@dataclass(frozen=True)
class Toolchain:
    """Where each tool is, and a fingerprint of their versions and binaries for cache keys."""

    python: str
    paths: FrozenDict[str, str]
    fingerprint: str
    env: FrozenDict[str, str]  # the explicit environment of processes using these tools

    def path(self, tool: str) -> str:
        return self.paths[tool]


@dataclass(frozen=True)
class OutputDirRequest:
    address: Address
    output_path: OutputPathField


@dataclass(frozen=True)
class OutputDir:
    """The target's directory under dist/, relative to it; no other target writes inside it."""

    path: str


@dataclass(frozen=True)
class BaseConfigRequest:
    field_set: KernelImageFieldSet
    source: LinuxSource


@dataclass(frozen=True)
class BaseConfig:
    digest: Digest  # holds base/.config


@dataclass(frozen=True)
class KernelConfigRequest:
    field_set: KernelImageFieldSet


@dataclass(frozen=True)
class KernelLayoutSpec:
    """What `layout.json` describes beyond `domain.introspect.layout`'s defaults: `struct.member`
    entries and the headers that define their structures (the `layout_fields` and
    `layout_headers` fields of the kernel's target)."""

    fields: Tuple[str, ...] = ()
    headers: Tuple[str, ...] = ()

    def args(self) -> Tuple[str, ...]:
        out: Tuple[str, ...] = ()
        for f in self.fields:
            out += ("--layout-field", f)
        for h in self.headers:
            out += ("--layout-header", h)
        return out


@dataclass(frozen=True)
class KernelConfig:
    """The final, checked `.config` (a digest holding the file `.config`) and its source, with
    what the build's `layout.json` must describe."""

    address: Address
    source: LinuxSource
    arch: str
    digest: Digest
    layout: KernelLayoutSpec = KernelLayoutSpec()


@dataclass(frozen=True)
class KernelBuildRequest:
    config: KernelConfig


@dataclass(frozen=True)
class KernelBuild:
    """The build's artifacts, each at the top of `digest`: see ARTIFACTS."""

    address: Address
    digest: Digest
    stats: Digest  # build-stats.json: objects compiled, total, seconds (not reproducible)


@dataclass(frozen=True)
class BootInitramfsRequest:
    """The minimal busybox image with the standard `/init` (see domain.guest.init) and the
    marker programs, plus an optional boot step: `boot_script` (a path in `digest`) runs before
    the init marker."""

    boot_script: Optional[str] = None
    digest: Digest = EMPTY_DIGEST
    modules: Digest = EMPTY_DIGEST  # a GuestModules digest: its files go into the image as is


@dataclass(frozen=True)
class BootInitramfs:
    digest: Digest  # holds initramfs.cpio.gz


@dataclass(frozen=True)
class AccelProbeRequest:
    kernel: Digest
    initramfs: Digest


@dataclass(frozen=True)
class AccelChoice:
    accel: str


PACKAGES_DIR = "prebuilt"  # where a prebuilt kernel's verified packages appear in a sandbox


@dataclass(frozen=True)
class PrebuiltKernelRequest:
    target: Target


@dataclass(frozen=True)
class PrebuiltKernel:
    """A distribution kernel's verified packages and what the trace pipeline needs of them.

    `config` and `build` have the shapes of a built `kernel_image`'s (`build.digest` holds
    bzImage, vmlinux with DWARF, System.map, config and sizes.json), so tracing and composition
    treat both kinds of trace kernel alike.
    """

    address: Address
    source: LinuxSource
    packages: Digest  # image.deb and debug.deb at the top: mount as PACKAGES_DIR
    debug_sha256: str
    release: str
    dwarf_prefix: str
    config: KernelConfig
    build: KernelBuild

    def image_deb(self) -> str:
        return f"{PACKAGES_DIR}/image.deb"

    def debug_deb(self) -> str:
        return f"{PACKAGES_DIR}/debug.deb"


@dataclass(frozen=True)
class ModulesRequest:
    kernel: PrebuiltKernel
    modules: Tuple[str, ...]
    owner: Address  # the baseline, for error messages


@dataclass(frozen=True)
class GuestModules:
    """`lib/modules/<release>/...ko` in load order and `etc/kernel_rules/modules` (empty if none)."""

    digest: Digest


@dataclass(frozen=True)
class BaselineMachine:
    """A baseline's QEMU machine (its `machine`, `cpus`, `memory`, `devices`, `cmdline` fields), as
    traces and app checks run it; `guest.qemu.Machine` is the domain side."""

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
class TraceKernel:
    """The trace kernel of a baseline: its build (or a prebuilt kernel's files in the same
    shape), final config, the machine to boot it on, and the modules its guests load."""

    baseline: Address
    config: KernelConfig
    build: KernelBuild
    machine: BaselineMachine
    timeout: int
    prebuilt: Optional[PrebuiltKernel] = None
    modules: GuestModules = GuestModules(EMPTY_DIGEST)


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


@dataclass(frozen=True)
class TracedBaseline:
    """A baseline's trace kernel, boot trace and config set."""

    kernel: TraceKernel
    trace: TraceResult
    config_set: ConfigSet


@dataclass(frozen=True)
class AppInitramfsRequest:
    fs: AppProfileFieldSet
    modules: GuestModules = GuestModules(EMPTY_DIGEST)  # the baseline's
    boot_script: Optional[str] = None  # the baseline's `boot_script`, a path in `boot_digest`
    boot_digest: Digest = EMPTY_DIGEST


@dataclass(frozen=True)
class AppInitramfs:
    digest: Digest  # initramfs.cpio.gz
    sha256: str


@dataclass(frozen=True)
class TracedApp:
    """An app profile's baseline, guest image, window trace and config set."""

    baseline: Address
    kernel: TraceKernel
    initramfs: AppInitramfs
    trace: TraceResult
    config_set: ConfigSet


@dataclass(frozen=True)
class TailoredInputs:
    baseline: TracedBaseline
    apps: Tuple[Tuple[AppProfileFieldSet, TracedApp], ...]


@dataclass(frozen=True)
class ComposeOptions:
    """What a composition takes from a `tailored_kernel`'s fields. The defaults are the fields'
    defaults: a verified baseline composes its baseline alone with them."""

    address: Address
    objective: str = "size"
    force: Tuple[str, ...] = ()
    forbid: Tuple[str, ...] = ()
    debug_info: bool = False
    embed_config: bool = True
    static_syscalls: str = "off"
    layout: KernelLayoutSpec = KernelLayoutSpec()

    @classmethod
    def of(cls, fs: TailoredKernelFieldSet) -> "ComposeOptions":
        return cls(
            fs.address,
            fs.objective.value,
            tuple(fs.force.value or ()),
            tuple(fs.forbid.value or ()),
            bool(fs.debug_info.value),
            bool(fs.embed_config.value),
            fs.static_syscalls.value,
            KernelLayoutSpec(
                tuple(fs.layout_fields.value or ()), tuple(fs.layout_headers.value or ())
            ),
        )


@dataclass(frozen=True)
class ComposeRequest:
    """Compose `options` from `inputs`; with `soft`, also list the soft requirements of that mode
    (soft.json) and leave out the soft items in `drop` (a minimisation try)."""

    options: ComposeOptions
    inputs: TailoredInputs
    soft: str = ""
    drop: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ComposedConfig:
    config: KernelConfig
    digest: Digest  # requirements.json, compose.json


@dataclass(frozen=True)
class TailoredKernel:
    inputs: TailoredInputs
    composed: ComposedConfig
    build: KernelBuild
    minimisation: Optional[Digest] = None  # minimise.json, when the kernel was minimised


@dataclass(frozen=True)
class CheckedImage:
    """A guest image an app check boots instead of the kernel's apps (a baseline's boot check)."""

    name: str
    initramfs: Digest  # initramfs.cpio.gz
    success: Optional[str]
    timeout: int


@dataclass(frozen=True)
class AppCheckRequest:
    """Run every app of `kernel` (or, when `images` is set, those images instead). `for_try`: a
    minimisation candidate, which fails at once when its guest has not reached init after
    TRY_INIT_TIMEOUT seconds, when it panics (`panic=-1` reboots, and QEMU runs with
    `-no-reboot`), and at its first failing app."""

    kernel: TailoredKernel
    address: Address
    cache_scope: ProcessCacheScope
    for_try: bool = False
    images: Optional[Tuple[CheckedImage, ...]] = None


@dataclass(frozen=True)
class AppCheck:
    result: FallibleProcessResult  # check/results.json, check/<i>.console.log; stdout: a summary


@dataclass(frozen=True)
class MinimiseRequest:
    fs: TailoredKernelFieldSet
    inputs: TailoredInputs


@dataclass(frozen=True)
class Minimised:
    composed: ComposedConfig
    build: KernelBuild
    record: Digest  # minimise.json, verified-baseline.json


@dataclass(frozen=True)
class BootCheckImageRequest:
    """The guest image of a baseline's boot check: the app guest's /init (domain.guest.init)
    with the baseline's modules and boot step, and an empty workload."""

    name: str
    modules: GuestModules
    boot_script: Optional[str] = None  # a path in `boot_digest`
    boot_digest: Digest = EMPTY_DIGEST


@dataclass(frozen=True)
class BaselineBootCheckRequest:
    """The boot check of the `kernel_baseline` at `address` (its `BootCheckImageRequest` image,
    as a `CheckedImage`): what verifies a baseline, and a tailored kernel that has no apps."""

    address: Address


@dataclass(frozen=True)
class VerifiedBaselineRequest:
    """The verified baseline of the `kernel_baseline` at `address`."""

    address: Address


@dataclass(frozen=True)
class VerifiedBaseline:
    """The baseline's soft requirements (what only ran during kernel initialisation) that its
    boot check shows are not needed: `removed`, out of `considered`. Computed once per
    baseline (every try a cached fact); tailored kernels of the baseline start from it."""

    address: Address
    considered: Tuple[str, ...]
    removed: Tuple[str, ...]
    record: Digest  # verified-baseline.json


@dataclass(frozen=True)
class SymbolSizesRequest:
    build: KernelBuild


@dataclass(frozen=True)
class SymbolSizes:
    nm_output: str


@dataclass(frozen=True)
class KernelOutputsRequest:
    """The outputs of `target`, a tailored_kernel, kernel_image or prebuilt_kernel; with
    `sizes`, its sizes.json too (which builds a kernel_image)."""

    target: Target
    sizes: bool = False


@dataclass(frozen=True)
class KernelOutputs:
    """What `kernel-explain` and `kernel-diff` read of a kernel, at the top of `digest`:
    `.config`; with sizes, `sizes.json`; for a tailored kernel also `requirements.json`,
    `trace/.config` (its trace kernel's), `sets/<i>/config-set.json` (the config set of
    `sets[i]`, a target address) and, when it was minimised, `minimise.json`. `build_file` is
    the BUILD file of `address`; `force` the target's `force` lines."""

    address: Address
    alias: str
    source: LinuxSource
    arch: str
    digest: Digest
    files: Tuple[str, ...]
    sets: Tuple[str, ...] = ()
    build_file: str = ""
    force: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ExplainRequest:
    """Run `kernel_rules.domain.compose.explain`: `command` explain (`symbols` of `kernel`) or
    diff (`kernel` against `other`, whose label is `other_label`)."""

    command: str
    kernel: KernelOutputs
    symbols: Tuple[str, ...] = ()
    other: Optional[KernelOutputs] = None


@dataclass(frozen=True)
class Explanation:
    json_text: str  # explain.json
    text: str  # explain.txt


class OutputFormat(Enum):
    """How a goal of the backend prints: for people or for tools."""

    text = "text"
    json = "json"


@dataclass(frozen=True)
class SyscallTableRequest:
    """The syscall -> Kconfig table of one kernel source (rules.syscalls)."""

    source: LinuxSource


@dataclass(frozen=True)
class SyscallTable:
    digest: Digest  # syscall-kconfig.json (domain.syscalls.kconfig_table)


@dataclass(frozen=True)
class AppSyscallsRequest:
    """The static and traced syscalls of one traced app profile (rules.syscalls)."""

    fs: AppProfileFieldSet
    traced: TracedApp


@dataclass(frozen=True)
class AppSyscalls:
    digest: Digest  # syscalls.json, syscalls.md, syscall-kconfig.json (domain.syscalls.analyse)


@dataclass(frozen=True)
class ProbeImageRequest:
    """The syscall probe's guest image (rules.probe), with a baseline's modules (none for a
    built trace kernel)."""

    modules: GuestModules = GuestModules(EMPTY_DIGEST)


@dataclass(frozen=True)
class ProbeImage:
    digest: Digest  # probe.cpio.gz


@dataclass(frozen=True)
class SyscallProbeRequest:
    """Boot `kernel` (a digest holding bzImage) on `machine` with the probe image and run the
    syscall probe (domain.guest.probe). `label` names the kernel in probe.json; `accel_kernel`
    (the trace kernel's bzImage) is booted once to probe KVM when `[qemu].accel` is auto. The
    same request (a trace kernel's) is one cached run however many tailored kernels ask."""

    kernel: Digest
    label: str
    machine: BaselineMachine
    modules: GuestModules
    accel_kernel: Digest


@dataclass(frozen=True)
class SyscallProbe:
    """The probe's run: `digest` holds probe/probe.json and probe/console.log; `probe_json` is
    probe.json's text ("" when the step wrote none); `summary` its stdout."""

    digest: Digest
    probe_json: str
    summary: str
