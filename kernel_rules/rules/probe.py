"""Guest images not made from an app_profile, and the syscall probe.

The syscall probe: a kernel booted on its baseline's machine with the probe image
(`kernel_rules.domain.guest.probe`), giving its verified syscall table, its memory in use after
boot and its micro-benchmarks. The boot check image: a baseline's modules and boot step and an
empty window, the oracle of a verified baseline (rules.minimise)."""

from __future__ import annotations

import hashlib
from typing import Optional, Tuple

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

from kernel_rules.domain.guest.init import BOOT_SCRIPT, render_app_init
from kernel_rules.domain.guest.probe import WORKLOAD, workload_script
from kernel_rules.rules.boot import QEMU
from kernel_rules.rules.process import DomainProcess, error_tail, tool_path
from kernel_rules.rules.types import (
    AccelChoice,
    AccelProbeRequest,
    AppInitramfs,
    BootCheckImageRequest,
    BootInitramfs,
    BootInitramfsRequest,
    GuestModules,
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


async def guest_image(
    label: str,
    workload: str,
    out: str,
    modules: GuestModules,
    programs: Tuple[str, ...] = (),
    boot_script: Optional[str] = None,
    boot_digest: Digest = EMPTY_DIGEST,
) -> FallibleProcessResult:
    """An app guest image (`render_app_init(label, workload)`) not made from an app_profile:
    `workload` is a script text run as the window; `programs` are C sources in the repository
    compiled into it; `boot_script` (a path in `boot_digest`) is the baseline's boot step."""
    files = await Get(
        Digest,
        CreateDigest(
            [
                FileContent("init", render_app_init(label, WORKLOAD).encode(), is_executable=True),
                FileContent(WORKLOAD, workload.encode(), is_executable=True),
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
        out,
        "--marker-source",
        "kernel_rules/domain/guest/window_marker.c",
        "--file",
        WORKLOAD,
        f"app/{WORKLOAD}",
    ]
    for p in programs:
        argv += ["--program", p]
    if modules.digest != EMPTY_DIGEST:
        argv += ["--tree", "guest_modules"]
    if boot_script:
        argv += ["--file", boot_script, BOOT_SCRIPT]
    return await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.guest.initramfs",
            tuple(argv),
            f"Build the {label} image",
            ToolchainRequest(("busybox", "gcc"), f"the {label} image"),
            input_digest=await Get(
                Digest,
                MergeDigests(
                    [
                        files,
                        boot_digest,
                        await Get(Digest, AddPrefix(modules.digest, "guest_modules")),
                    ]
                ),
            ),
            output_directories=(),
            output_files=(out,),
            remote_cache_first=False,
        ),
    )


@rule(desc="Build the syscall probe image", level=LogLevel.DEBUG)
async def probe_image(request: ProbeImageRequest) -> ProbeImage:
    result = await guest_image(
        "syscall probe", workload_script(), "probe.cpio.gz", request.modules, (PROBE_SOURCE,)
    )
    if result.exit_code != 0:
        raise ProbeError("building the syscall probe image failed: " + error_tail(result))
    return ProbeImage(result.output_digest)


# The boot check's window: nothing. The check passes when the kernel boots, the baseline's boot
# step exits 0 and the guest reports the (empty) workload's status intact.
BOOT_CHECK_WORKLOAD = "exit 0\n"


@rule(desc="Build a baseline's boot check image", level=LogLevel.DEBUG)
async def boot_check_image(request: BootCheckImageRequest) -> AppInitramfs:
    result = await guest_image(
        "boot check",
        BOOT_CHECK_WORKLOAD,
        "initramfs.cpio.gz",
        request.modules,
        boot_script=request.boot_script,
        boot_digest=request.boot_digest,
    )
    if result.exit_code != 0:
        raise ProbeError(
            f"{request.name}: building the boot check image failed: " + error_tail(result)
        )
    content = (await Get(DigestContents, Digest, result.output_digest))[0].content
    return AppInitramfs(result.output_digest, hashlib.sha256(content).hexdigest())


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
