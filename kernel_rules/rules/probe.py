"""The syscall probe: a kernel booted on its baseline's machine with the probe image
(`kernel_rules.domain.guest.probe`), giving its verified syscall table, its memory in use after
boot and its micro-benchmarks."""

from __future__ import annotations

from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
)
from pants.engine.process import FallibleProcessResult, ProcessCacheScope
from pants.engine.rules import Get, collect_rules, rule
from pants.util.logging import LogLevel

from kernel_rules.domain.guest.init import render_app_init
from kernel_rules.domain.guest.probe import WORKLOAD, workload_script
from kernel_rules.rules.boot import QEMU
from kernel_rules.rules.process import DomainProcess, error_tail, tool_path
from kernel_rules.rules.types import (
    AccelChoice,
    AccelProbeRequest,
    BootInitramfs,
    BootInitramfsRequest,
    ProbeImage,
    ProbeImageRequest,
    SyscallProbe,
    SyscallProbeRequest,
    ToolchainRequest,
)
from kernel_rules.subsystems import QemuSubsystem

PROBE_SOURCE = "kernel_rules/domain/guest/syscall_probe.c"
PROBE_TIMEOUT = 240  # seconds for one boot: the probe and its benchmarks take about 15 s (TCG)


class ProbeError(Exception):
    """The syscall probe's image could not be built."""


@rule(desc="Build the syscall probe image", level=LogLevel.DEBUG)
async def probe_image(request: ProbeImageRequest) -> ProbeImage:
    files = await Get(
        Digest,
        CreateDigest(
            [
                FileContent(
                    "init",
                    render_app_init("syscall probe", WORKLOAD).encode(),
                    is_executable=True,
                ),
                FileContent(WORKLOAD, workload_script().encode(), is_executable=True),
            ]
        ),
    )
    modules = await Get(Digest, AddPrefix(request.modules.digest, "guest_modules"))
    argv = [
        "--busybox",
        tool_path("busybox"),
        "--gcc",
        tool_path("gcc"),
        "--init",
        "init",
        "--out",
        "probe.cpio.gz",
        "--marker-source",
        "kernel_rules/domain/guest/window_marker.c",
        "--file",
        WORKLOAD,
        f"app/{WORKLOAD}",
        "--program",
        PROBE_SOURCE,
    ]
    if request.modules.digest != EMPTY_DIGEST:
        argv += ["--tree", "guest_modules"]
    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.guest.initramfs",
            tuple(argv),
            "Build the syscall probe image",
            ToolchainRequest(("busybox", "gcc"), "the syscall probe image"),
            input_digest=await Get(Digest, MergeDigests([files, modules])),
            output_directories=(),
            output_files=("probe.cpio.gz",),
            remote_cache_first=False,
        ),
    )
    if result.exit_code != 0:
        raise ProbeError("building the syscall probe image failed: " + error_tail(result))
    return ProbeImage(result.output_digest)


@rule(desc="Run the syscall probe on a kernel", level=LogLevel.DEBUG)
async def syscall_probe(request: SyscallProbeRequest, qemu: QemuSubsystem) -> SyscallProbe:
    accel = qemu.accel
    if accel == "auto":
        boot = await Get(BootInitramfs, BootInitramfsRequest())
        accel = (await Get(AccelChoice, AccelProbeRequest(request.accel_kernel, boot.digest))).accel
    image = await Get(ProbeImage, ProbeImageRequest(request.modules))
    m = request.machine
    argv = (
        "--qemu",
        tool_path(QEMU),
        "--kernel",
        "bzImage",
        "--initrd",
        "probe.cpio.gz",
        f"--label={request.label}",
        f"--cmdline={m.cmdline} nokaslr",
        *m.process_args(),
        "--accel",
        accel,
        "--timeout",
        str(PROBE_TIMEOUT),
        "--out",
        "probe",
    )
    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.guest.probe",
            argv,
            f"Probe the syscalls of {request.label} (QEMU {accel})",
            ToolchainRequest((QEMU,), "QEMU boots"),
            input_digest=await Get(Digest, MergeDigests([request.kernel, image.digest])),
            output_directories=("probe",),
            timeout_seconds=PROBE_TIMEOUT + 60,
            cache_scope=ProcessCacheScope.SUCCESSFUL,
            remote_cache_first=False,
        ),
    )
    files = {
        c.path: c.content.decode(errors="replace")
        for c in await Get(
            DigestContents,
            Digest,
            await Get(Digest, DigestSubset(result.output_digest, PathGlobs(["probe/probe.json"]))),
        )
    }
    summary = result.stdout.decode(errors="replace").strip()
    if result.exit_code not in (0, 1):
        summary = f"the syscall probe step failed (exit code {result.exit_code}):\n" + error_tail(
            result
        )
    return SyscallProbe(result.output_digest, files.get("probe/probe.json", ""), summary)


def rules():
    return collect_rules()
