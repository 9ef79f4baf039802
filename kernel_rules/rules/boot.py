"""Boot a `kernel_image` under QEMU: `pants run` (interactive) and `pants test` (init marker).

`pants run` starts QEMU through a small guard (domain.guest.guard) so that QEMU dies with the
run, even when the Pants process that started it is killed.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from pants.core.goals.run import RunRequest
from pants.core.goals.test import TestRequest, TestResult, TestSubsystem
from pants.engine.addresses import Address
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestSubset,
    EMPTY_DIGEST,
    FileContent,
    MergeDigests,
    PathGlobs,
)
from pants.engine.process import FallibleProcessResult, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.option.option_types import SkipOption
from pants.option.subsystem import Subsystem
from pants.util.logging import LogLevel

from kernel_rules.domain.guest.init import BOOT_INIT, BOOT_SCRIPT
from kernel_rules.domain.guest.protocol import CHECK_PARAM
from kernel_rules.domain.guest.qemu import (
    BootSpec,
    Machine,
    cmdline_problem,
    command_line,
    memory_problem,
)
from kernel_rules.rules.process import DomainProcess, tool_path
from kernel_rules.rules.scripts import DomainScripts, DomainScriptsRequest
from kernel_rules.rules.types import (
    AccelChoice,
    AccelProbeRequest,
    AppCheck,
    AppCheckRequest,
    BootInitramfs,
    CheckedImage,
    BootInitramfsRequest,
    KernelBuild,
    KernelBuildRequest,
    KernelConfig,
    KernelConfigRequest,
    Toolchain,
    ToolchainRequest,
)
from kernel_rules.subsystems import QemuSubsystem
from kernel_rules.targets.kernel_image import (
    KernelImageFieldSet,
    KernelRunFieldSet,
    KernelTestFieldSet,
)

QEMU = "qemu-system-x86_64"


class BootError(Exception):
    """A guest could not be prepared or booted."""


@rule(desc="Build the busybox initramfs", level=LogLevel.DEBUG)
async def boot_initramfs(request: BootInitramfsRequest) -> BootInitramfs:
    init = await Get(
        Digest, CreateDigest([FileContent("init", BOOT_INIT.encode(), is_executable=True)])
    )
    # The marker programs: BOOT_INIT runs the user-space marker first (see domain.guest.init).
    extra = [
        "--gcc",
        tool_path("gcc"),
        "--marker-source",
        "kernel_rules/domain/guest/window_marker.c",
    ]
    if request.boot_script:
        extra += ["--file", request.boot_script, BOOT_SCRIPT]
    if request.modules != EMPTY_DIGEST:
        extra += ["--tree", "guest_modules"]
    result = await Get(
        ProcessResult,
        DomainProcess(
            "kernel_rules.domain.guest.initramfs",
            (
                "--busybox",
                tool_path("busybox"),
                "--init",
                "init",
                "--out",
                "initramfs.cpio.gz",
                *extra,
            ),
            "Build the busybox initramfs",
            ToolchainRequest(("busybox", "gcc"), "initramfs images"),
            input_digest=await Get(
                Digest,
                MergeDigests(
                    [
                        init,
                        request.digest,
                        await Get(Digest, AddPrefix(request.modules, "guest_modules")),
                    ]
                ),
            ),
            output_directories=(),
            output_files=("initramfs.cpio.gz",),
            remote_cache_first=False,
        ),
    )
    return BootInitramfs(result.output_digest)


def check_boot_fields(
    address: Address, cmdline: str, memory: str, appended: str, boot_timeout: Optional[int] = None
) -> None:
    """Refuse, before anything boots, a `kernel_image`'s boot fields that cannot work: a
    command line that with `appended` exceeds what the kernel keeps, a memory size QEMU would
    misread, a boot timeout <= 0."""
    problems = [("cmdline", cmdline_problem(cmdline, appended)), ("memory", memory_problem(memory))]
    if boot_timeout is not None and boot_timeout <= 0:
        problems.append(("boot_timeout", f"must be greater than 0, but was {boot_timeout}"))
    for field, problem in problems:
        if problem:
            raise BootError(f"{address}: field `{field}`: {problem}")


async def _kernel_and_initramfs(address: Address) -> tuple:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(address, description_of_origin="kernel_rules boot")
    )
    fs = KernelImageFieldSet.create(wrapped.target)
    config = await Get(KernelConfig, KernelConfigRequest(fs))
    built, initramfs, toolchain = await MultiGet(
        Get(KernelBuild, KernelBuildRequest(config)),
        Get(BootInitramfs, BootInitramfsRequest()),
        Get(Toolchain, ToolchainRequest((QEMU,), "QEMU boots")),
    )
    return built, initramfs, toolchain


async def _boot_process(
    kernel: Digest,
    initramfs: Digest,
    cmdline: str,
    memory: str,
    accel: str,
    timeout: int,
    description: str,
    cache_scope: ProcessCacheScope,
) -> DomainProcess:
    return DomainProcess(
        "kernel_rules.domain.guest.qemu",
        (
            "boot",
            "--qemu",
            tool_path(QEMU),
            "--kernel",
            "bzImage",
            "--initrd",
            "initramfs.cpio.gz",
            f"--cmdline={cmdline} {CHECK_PARAM}",
            f"--memory={memory}",
            "--accel",
            accel,
            "--timeout",
            str(timeout),
            "--console",
            "console.log",
        ),
        description,
        ToolchainRequest((QEMU,), "QEMU boots"),
        input_digest=await Get(Digest, MergeDigests([kernel, initramfs])),
        output_directories=(),
        output_files=("console.log",),
        timeout_seconds=timeout + 90,
        cache_scope=cache_scope,
        remote_cache_first=False,
    )


@rule(desc="Probe QEMU acceleration", level=LogLevel.DEBUG)
async def probe_accel(request: AccelProbeRequest) -> AccelChoice:
    result = await Get(
        FallibleProcessResult,
        DomainProcess,
        await _boot_process(
            request.kernel,
            request.initramfs,
            "console=ttyS0 nokaslr",
            "256M",
            "auto",
            60,
            "Probe KVM with a boot",
            ProcessCacheScope.PER_RESTART_SUCCESSFUL,
        ),
    )
    return AccelChoice("kvm" if b"accelerator kvm" in result.stderr else "tcg")


@rule(desc="Boot kernel under QEMU")
async def run_kernel_image(field_set: KernelRunFieldSet, qemu: QemuSubsystem) -> RunRequest:
    check_boot_fields(field_set.address, field_set.cmdline.value, field_set.memory.value, "")
    built, initramfs, toolchain = await _kernel_and_initramfs(field_set.address)
    scripts = await Get(DomainScripts, DomainScriptsRequest("kernel_rules.domain.guest.guard"))
    accel = qemu.accel if qemu.accel in ("tcg", "kvm") else "tcg"
    if qemu.accel == "auto":
        accel = await Get(AccelChoice, AccelProbeRequest(built.digest, initramfs.digest))
        accel = accel.accel
    spec = BootSpec(
        qemu=toolchain.path(QEMU),
        kernel="{chroot}/bzImage",
        initrd="{chroot}/initramfs.cpio.gz",
        cmdline=field_set.cmdline.value,
        machine=Machine(memory=field_set.memory.value),
        accel=accel,
    )
    argv = command_line(spec)
    # Interactive: serial and QEMU's monitor share the terminal (Ctrl-A X quits).
    argv[argv.index("-serial") + 1] = "mon:stdio"
    guard = [toolchain.python, "{chroot}/kernel_rules/domain/guest/guard.py", "--"]
    return RunRequest(
        digest=await Get(Digest, MergeDigests([built.digest, initramfs.digest, scripts.digest])),
        args=guard + argv,
        extra_env={},
    )


class KernelBootTestSubsystem(Subsystem):
    options_scope = "kernel-boot-test"
    name = "kernel boot test"
    help = "Boot checks of `kernel_image` targets with `pants test`."

    skip = SkipOption("test")


class KernelBootTestRequest(TestRequest):
    tool_subsystem = KernelBootTestSubsystem
    field_set_type = KernelTestFieldSet


@rule(desc="Boot kernel to its init marker")
async def test_kernel_boot(
    batch: KernelBootTestRequest.Batch[KernelTestFieldSet, Any],
    test_subsystem: TestSubsystem,
    qemu: QemuSubsystem,
) -> TestResult:
    fs = batch.single_element
    check_boot_fields(
        fs.address, fs.cmdline.value, fs.memory.value, f" {CHECK_PARAM}", fs.boot_timeout.value
    )
    built, initramfs, _ = await _kernel_and_initramfs(fs.address)
    process = await _boot_process(
        built.digest,
        initramfs.digest,
        fs.cmdline.value,
        fs.memory.value,
        qemu.accel,
        fs.boot_timeout.value,
        f"Boot {fs.address} to its init marker (QEMU)",
        ProcessCacheScope.PER_SESSION if test_subsystem.force else ProcessCacheScope.SUCCESSFUL,
    )
    result = await Get(FallibleProcessResult, DomainProcess, process)
    return TestResult.from_fallible_process_result(
        process_result=result, address=fs.address, output_setting=test_subsystem.output
    )


TRY_INIT_TIMEOUT = 60


@rule(desc="Run the apps' workloads on a tailored kernel", level=LogLevel.DEBUG)
async def app_check(request: AppCheckRequest, qemu: QemuSubsystem) -> AppCheck:
    k = request.kernel
    bz_image, trace_bz_image = await MultiGet(
        Get(Digest, DigestSubset(k.build.digest, PathGlobs(["bzImage"]))),
        Get(Digest, DigestSubset(k.inputs.baseline.kernel.build.digest, PathGlobs(["bzImage"]))),
    )
    accel = qemu.accel
    if accel == "auto":  # probed once per trace kernel: a candidate may not boot at all
        boot = await Get(BootInitramfs, BootInitramfsRequest())
        accel = (await Get(AccelChoice, AccelProbeRequest(trace_bz_image, boot.digest))).accel
    checked = request.images
    if checked is None:
        checked = tuple(
            CheckedImage(str(a.address), t.initramfs.digest, a.success.value, a.timeout.value)
            for a, t in k.inputs.apps
        )
    images = await MultiGet(
        Get(Digest, AddPrefix(c.initramfs, f"apps/{i}")) for i, c in enumerate(checked)
    )
    apps = [
        {
            "name": c.name,
            "initrd": f"apps/{i}/initramfs.cpio.gz",
            "success": c.success,
            "timeout": c.timeout,
        }
        for i, c in enumerate(checked)
    ]
    listing = await Get(
        Digest,
        CreateDigest(
            [FileContent("apps.json", json.dumps(apps, indent=1, sort_keys=True).encode())]
        ),
    )
    m = k.inputs.baseline.kernel.machine
    argv = [
        "--qemu",
        tool_path(QEMU),
        "--kernel",
        "bzImage",
        "--apps",
        "apps.json",
        "--cmdline",
        f"{m.cmdline} nokaslr" + (" panic=-1" if request.for_try else ""),
        *m.process_args(),
        "--accel",
        accel,
        "--out",
        "check",
    ]
    if request.for_try:
        argv += ["--init-timeout", str(TRY_INIT_TIMEOUT), "--fail-fast"]
    return AppCheck(
        await Get(
            FallibleProcessResult,
            DomainProcess(
                "kernel_rules.domain.guest.app_check",
                tuple(argv),
                f"Run {len(apps)} app workload(s) on {request.address} (QEMU {accel})",
                ToolchainRequest((QEMU,), "QEMU boots"),
                input_digest=await Get(Digest, MergeDigests([bz_image, listing, *images])),
                output_directories=("check",),
                timeout_seconds=sum(a["timeout"] for a in apps) + 60 * len(apps) + 60,
                cache_scope=request.cache_scope,
                remote_cache_first=False,
            ),
        )
    )


def rules():
    return [
        *collect_rules(),
        *KernelRunFieldSet.rules(),
        *KernelBootTestRequest.rules(),
    ]
