"""`tailored_kernel`: traced sets -> compose (MaxSAT + olddefconfig) -> build -> check apps.

`package` writes the kernel, its composed requirements and a report; `test` boots the kernel on
the baseline's machine with every app's image and runs each workload.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, FrozenSet, List, Optional, Tuple

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField, PackageFieldSet
from pants.core.goals.test import TestFieldSet, TestRequest, TestResult, TestSubsystem
from pants.engine.addresses import Address, UnparsedAddressInputs
from pants.engine.fs import (
    AddPrefix, CreateDigest, Digest, DigestContents, DigestSubset, FileContent, MergeDigests,
    PathGlobs, RemovePrefix, Snapshot)
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import Targets, WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionRule
from pants.option.option_types import SkipOption
from pants.option.subsystem import Subsystem
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from kernel_rules.domain.kconfig.fragments import parse_config
from kernel_rules.domain.compose.minimise import (
    groups_from_document, minimisation_record, plan, whole_groups)
from kernel_rules.domain.compose.report import build_report, render_markdown, symbol_sizes
from kernel_rules.rules.boot import QEMU, AccelChoice, AccelProbeRequest, BootInitramfs, BootInitramfsRequest
from kernel_rules.rules.kernel import (
    KernelBuild, KernelBuildError, KernelBuildRequest, KernelConfig, KernelConfigError)
from kernel_rules.rules.output_paths import OutputDir, OutputDirRequest
from kernel_rules.rules.process import (
    CACHE_DIR, SANDBOX_SITE, DomainProcess, error_tail, tool_path, user_error)
from kernel_rules.rules.source import tarball_in_sandbox
from kernel_rules.rules.toolchain import Toolchain, ToolchainRequest, kbuild_toolchain_request
from kernel_rules.rules.trace import (
    AppProfileFieldSet, BaselineFieldSet, TracedApp, TracedBaseline, _one_target, app_baseline)
from kernel_rules.subsystems import STEP_TIMEOUT, QemuSubsystem
from kernel_rules.tailor_target_types import (
    TailoredAppsField, TailoredBaselineField, TailoredDebugInfoField, TailoredForbidField,
    TailoredForceField, TailoredMinimiseField, TailoredMinimiseMaxTriesField,
    TailoredObjectiveField)
from kernel_rules.trace_target_types import AppWorkloadField, BaselineKernelField



logger = logging.getLogger(__name__)


class TailorError(Exception):
    """A tailored kernel cannot be composed: bad fields, inputs, or unsatisfiable requirements."""


async def _texts(digest: Digest) -> dict:
    return {c.path: c.content.decode() for c in await Get(DigestContents, Digest, digest)}


@dataclass(frozen=True)
class TailoredKernelFieldSet(PackageFieldSet):
    required_fields = (TailoredBaselineField,)

    baseline: TailoredBaselineField
    apps: TailoredAppsField
    force: TailoredForceField
    forbid: TailoredForbidField
    objective: TailoredObjectiveField
    debug_info: TailoredDebugInfoField
    minimise: TailoredMinimiseField
    minimise_max_tries: TailoredMinimiseMaxTriesField
    output_path: OutputPathField


# ---------------------------------------------------------------------------------------------
# inputs: the traced baseline and apps
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TailoredInputs:
    baseline: TracedBaseline
    apps: Tuple[Tuple[AppProfileFieldSet, TracedApp], ...]


@rule(desc="Trace a tailored kernel's baseline and apps")
async def tailored_inputs(fs: TailoredKernelFieldSet) -> TailoredInputs:
    baseline_tgt = await _one_target(fs.baseline.value, fs.address, "baseline",
                                     BaselineKernelField, "kernel_baseline")
    baseline_fs = BaselineFieldSet.create(baseline_tgt)
    app_tgts = await Get(Targets, UnparsedAddressInputs(
        fs.apps.value or (), owning_address=fs.address,
        description_of_origin=f"the `apps` field of {fs.address}"))
    app_fss: List[AppProfileFieldSet] = []
    for tgt in app_tgts:
        if not tgt.has_field(AppWorkloadField):
            raise TailorError(f"{fs.address}: field `apps`: {tgt.address} is a `{tgt.alias}`, "
                              "not an `app_profile`.")
        app_fs = AppProfileFieldSet.create(tgt)
        traced_on = await app_baseline(app_fs)
        if traced_on.address != baseline_fs.address:
            raise TailorError(
                f"{fs.address}: field `apps`: {tgt.address} is traced on baseline "
                f"{traced_on.address}, but this kernel's baseline is {baseline_fs.address}; "
                "config sets of different trace kernels cannot be composed.")
        app_fss.append(app_fs)
    baseline = await Get(TracedBaseline, BaselineFieldSet, baseline_fs)
    apps = await MultiGet(Get(TracedApp, AppProfileFieldSet, a) for a in app_fss)
    return TailoredInputs(baseline, tuple(zip(app_fss, apps)))


# ---------------------------------------------------------------------------------------------
# compose
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComposeRequest:
    """Compose `fs` from `inputs`; with `soft`, also list the soft requirements of that mode
    (soft.json) and leave out the soft items in `drop` (a minimisation try)."""

    fs: TailoredKernelFieldSet
    inputs: TailoredInputs
    soft: str = ""
    drop: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ComposedConfig:
    config: KernelConfig
    digest: Digest  # requirements.json, compose.json


@rule(desc="Compose a tailored kernel configuration", level=LogLevel.DEBUG)
async def compose_config(request: ComposeRequest) -> ComposedConfig:
    fs, inputs = request.fs, request.inputs
    kernel = inputs.baseline.kernel
    source = kernel.config.source
    site = await Get(Snapshot, PathGlobs([f"{SANDBOX_SITE}/**", f"!{SANDBOX_SITE}/bin/**"]))
    if not any(f.startswith(f"{SANDBOX_SITE}/pysat/") for f in site.files):
        raise TailorError(f"{SANDBOX_SITE}/ has no python-sat: run ./pants once more (its setup "
                          "installs third_party/python/sandbox-requirements.txt there).")
    sets = [("baseline", str(inputs.baseline.kernel.baseline), inputs.baseline.config_set.digest)]
    sets += [("app", str(a.address), t.config_set.digest) for a, t in inputs.apps]
    set_digests = await MultiGet(Get(Digest, AddPrefix(d, f"sets/{i}"))
                                 for i, (_, _, d) in enumerate(sets))
    trace_files = await Get(Digest, DigestSubset(kernel.build.digest, PathGlobs(["sizes.json"])))
    trace_dir = await Get(Digest, AddPrefix(
        await Get(Digest, MergeDigests([kernel.config.digest, trace_files])), "trace"))
    argv = ["--tarball", tarball_in_sandbox(source), "--sha256", source.sha256,
            "--cache", CACHE_DIR, "--arch", kernel.config.arch, "--jobs", "1",
            "--target", str(fs.address), "--trace-config", "trace/.config",
            "--sizes", "trace/sizes.json", "--objective", fs.objective.value, "--out", "out"]
    for i, (_kind, label, _) in enumerate(sets):
        argv += ["--set", f"{label}=sets/{i}/config-set.json"]
    for line in fs.force.value or ():
        argv += ["--force", line]
    for name in fs.forbid.value or ():
        argv += ["--forbid", name]
    if fs.debug_info.value:
        argv += ["--debug-info"]
    extra: List[Digest] = []
    if request.soft:
        argv += ["--soft", request.soft]
    if request.drop:
        argv += ["--drop-file", "drop.json"]
        extra.append(await Get(Digest, CreateDigest([FileContent(
            "drop.json", json.dumps(sorted(request.drop), indent=1).encode())])))
    result = await Get(FallibleProcessResult, DomainProcess(
        "kernel_rules.domain.compose.tailor",
        tuple(argv),
        f"Compose {fs.address} ({len(sets)} config sets, objective {fs.objective.value}"
        + (f", {len(request.drop)} soft requirements left out)" if request.drop else ")"),
        kbuild_toolchain_request(),
        input_digest=await Get(Digest, MergeDigests([trace_dir, *set_digests, *extra])),
        immutable_inputs=FrozenDict({"linux_source": source.digest}),
        uses_cache=True,
        sandbox_site=site.digest,
    ))
    report = user_error(result)
    if report is not None:
        raise TailorError(f"{fs.address}: {report['error']}")
    if result.exit_code != 0:
        raise TailorError(f"{fs.address}: composing the configuration failed (exit code "
                          f"{result.exit_code}):\n" + error_tail(result))
    out = await Get(Digest, RemovePrefix(result.output_digest, "out"))
    config, rest = await MultiGet(
        Get(Digest, DigestSubset(out, PathGlobs([".config"]))),
        Get(Digest, DigestSubset(out, PathGlobs(
            ["requirements.json", "compose.json", "soft.json"]))),
    )
    return ComposedConfig(KernelConfig(fs.address, source, kernel.config.arch, config), rest)


@dataclass(frozen=True)
class TailoredKernel:
    inputs: TailoredInputs
    composed: ComposedConfig
    build: KernelBuild
    minimisation: Optional[Digest] = None  # minimise.json, when the kernel was minimised


# ---------------------------------------------------------------------------------------------
# running every app on the kernel
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppCheckRequest:
    """Run every app of `kernel`. `for_try`: a minimisation candidate, which fails at once when
    its guest has not reached init after TRY_INIT_TIMEOUT seconds, when it panics (`panic=-1`
    reboots, and QEMU runs with `-no-reboot`), and at its first failing app."""

    kernel: TailoredKernel
    address: Address
    cache_scope: ProcessCacheScope
    for_try: bool = False


TRY_INIT_TIMEOUT = 60


@dataclass(frozen=True)
class AppCheck:
    result: FallibleProcessResult  # check/results.json, check/<i>.console.log; stdout: a summary


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
    images = await MultiGet(Get(Digest, AddPrefix(t.initramfs.digest, f"apps/{i}"))
                            for i, (_, t) in enumerate(k.inputs.apps))
    apps = [{"name": str(a.address), "initrd": f"apps/{i}/initramfs.cpio.gz",
             "success": a.success.value, "timeout": a.timeout.value}
            for i, (a, _) in enumerate(k.inputs.apps)]
    listing = await Get(Digest, CreateDigest([FileContent(
        "apps.json", json.dumps(apps, indent=1, sort_keys=True).encode())]))
    m = k.inputs.baseline.kernel.machine
    argv = ["--qemu", tool_path(QEMU), "--kernel", "bzImage", "--apps", "apps.json",
            "--cmdline", f"{m.cmdline} nokaslr" + (" panic=-1" if request.for_try else ""),
            *m.process_args(), "--accel", accel, "--out", "check"]
    if request.for_try:
        argv += ["--init-timeout", str(TRY_INIT_TIMEOUT), "--fail-fast"]
    return AppCheck(await Get(FallibleProcessResult, DomainProcess(
        "kernel_rules.domain.guest.app_check",
        tuple(argv),
        f"Run {len(apps)} app workload(s) on {request.address} (QEMU {accel})",
        ToolchainRequest((QEMU,), "QEMU boots"),
        input_digest=await Get(Digest, MergeDigests([bz_image, listing, *images])),
        output_directories=("check",),
        timeout_seconds=sum(a["timeout"] for a in apps) + 60 * len(apps) + 60,
        cache_scope=request.cache_scope,
        remote_cache_first=False,
    )))


# ---------------------------------------------------------------------------------------------
# verified minimisation: which soft requirements can go (domain.compose.minimise drives the search)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MinimiseRequest:
    fs: TailoredKernelFieldSet
    inputs: TailoredInputs


@dataclass(frozen=True)
class Minimised:
    composed: ComposedConfig
    build: KernelBuild
    record: Digest  # minimise.json


def _listing(names: List[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


@dataclass(frozen=True)
class _Verdict:
    passed: bool
    detail: dict
    composed: Optional[ComposedConfig] = None
    build: Optional[KernelBuild] = None


async def _minimisation_try(fs: TailoredKernelFieldSet, inputs: TailoredInputs,
                            drop: Tuple[str, ...]) -> _Verdict:
    """Compose without `drop`, build, and run every app's workload: one fact, cached by Pants
    like any other result (failed app checks too: their cache scope is ALWAYS)."""
    try:
        composed = await Get(ComposedConfig, ComposeRequest(fs, inputs, fs.minimise.value, drop))
        build = await Get(KernelBuild, KernelBuildRequest(composed.config))
    except (TailorError, KernelConfigError, KernelBuildError) as e:
        return _Verdict(False, {"reason": "the candidate did not compose or build: "
                                + str(e)[-1500:]})
    kernel = TailoredKernel(inputs, composed, build)
    check = (await Get(AppCheck, AppCheckRequest(kernel, fs.address, ProcessCacheScope.ALWAYS,
                                                 for_try=True))).result
    files = await _texts(await Get(Digest, DigestSubset(
        build.digest, PathGlobs(["config", "sizes.json"]))))
    stats = await _texts(build.stats)
    sizes = json.loads(files["sizes.json"])
    detail = {"enabled": sum(1 for v in parse_config(files["config"]).values()
                             if v in ("y", "m")),
              "bzImage": sizes["bzImage"], "text": sizes["vmlinux"][0],
              **_build_cost(stats)}
    if check.exit_code != 0:
        out = check.stdout.decode(errors="replace").splitlines()
        fails = [line[:300] for line in out if line.startswith("FAIL ")]
        detail["reason"] = "\n".join(fails + out[-25:])[-3000:]
    return _Verdict(check.exit_code == 0, detail, composed, build)


def _build_cost(stats: dict) -> dict:
    """Objects compiled and seconds of a try's build, from its (cached) build-stats.json."""
    data = json.loads(stats["build-stats.json"]) if stats else {}
    return {"objects_compiled": data.get("compiled"), "build_seconds": data.get("seconds")}


@rule(desc="Minimise a tailored kernel by booting candidates")
async def minimise_tailored_kernel(request: MinimiseRequest) -> Minimised:
    fs, inputs = request.fs, request.inputs
    started = time.monotonic()
    first = await Get(ComposedConfig, ComposeRequest(fs, inputs, fs.minimise.value))
    soft = await _texts(await Get(Digest, DigestSubset(first.digest, PathGlobs(["soft.json"]))))
    groups = groups_from_document(json.loads(soft["soft.json"]))
    soft_count = sum(len(g.symbols) for g in groups)
    budget = fs.minimise_max_tries.value
    search = plan(groups)
    tries: List[dict] = []
    accepted: FrozenSet[str] = frozenset()
    best: Optional[_Verdict] = None
    exhausted = False
    try:
        candidate = next(search)
        while True:
            if len(tries) >= budget:
                exhausted = True
                break
            delta = sorted(candidate - accepted)
            whole = whole_groups(groups, delta, candidate)
            logger.info(f"{fs.address}: minimisation try {len(tries) + 1}: leaving out "
                        f"{len(candidate)} of {soft_count} soft requirements; new: "
                        + _listing(whole or delta))
            verdict = await _minimisation_try(fs, inputs, tuple(sorted(candidate)))
            tries.append({"try": len(tries) + 1, "left_out": len(candidate),
                          "new": delta, "new_groups": whole, "passed": verdict.passed,
                          **verdict.detail})
            why = [line for line in verdict.detail.get("reason", "").splitlines()
                   if line.startswith("FAIL ") or "did not compose" in line][:1]
            logger.info(f"{fs.address}: minimisation try {len(tries)}: "
                        + ("passed" if verdict.passed else "failed")
                        + (f" ({why[0][:200]})" if why else "")
                        + (f" ({verdict.detail['enabled']} options, text "
                           f"{verdict.detail['text']} bytes)" if "enabled" in verdict.detail
                           else ""))
            if verdict.passed:
                accepted, best = candidate, verdict
            candidate = search.send(verdict.passed)
    except StopIteration:
        pass
    if best is None:
        composed = first
        build = await Get(KernelBuild, KernelBuildRequest(first.config))
    else:
        composed, build = best.composed, best.build
    record = minimisation_record(
        mode=fs.minimise.value, groups=groups, tries=tries, removed=accepted,
        exhausted=exhausted, budget=budget, seconds=time.monotonic() - started)
    digest = await Get(Digest, CreateDigest([FileContent(
        "minimise.json", (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())]))
    logger.info(f"{fs.address}: minimisation done after {len(tries)} tries: left out "
                f"{len(accepted)} of {soft_count} soft requirements")
    return Minimised(composed, build, digest)


@rule(desc="Compose and build a tailored kernel")
async def tailored_kernel(fs: TailoredKernelFieldSet) -> TailoredKernel:
    if fs.minimise.value != "off" and not fs.apps.value:
        raise TailorError(f"{fs.address}: field `minimise`: a minimisation verifies candidates "
                          "by running the apps' workloads, and `apps` is empty.")
    inputs = await Get(TailoredInputs, TailoredKernelFieldSet, fs)
    if fs.minimise.value != "off":
        m = await Get(Minimised, MinimiseRequest(fs, inputs))
        return TailoredKernel(inputs, m.composed, m.build, m.record)
    composed = await Get(ComposedConfig, ComposeRequest(fs, inputs))
    build = await Get(KernelBuild, KernelBuildRequest(composed.config))
    return TailoredKernel(inputs, composed, build)


# ---------------------------------------------------------------------------------------------
# package
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SymbolSizesRequest:
    build: KernelBuild


@dataclass(frozen=True)
class SymbolSizes:
    nm_output: str


@rule(desc="Measure a vmlinux by its symbols", level=LogLevel.DEBUG)
async def symbol_sizes_of(request: SymbolSizesRequest) -> SymbolSizes:
    toolchain = await Get(Toolchain, ToolchainRequest(("nm",), "measuring kernels"))
    vmlinux = await Get(Digest, DigestSubset(request.build.digest, PathGlobs(["vmlinux"])))
    result = await Get(ProcessResult, Process(
        [toolchain.path("nm"), "-S", "--defined-only", "vmlinux"],
        description=f"Measure {request.build.address} (nm)",
        timeout_seconds=STEP_TIMEOUT,
        input_digest=vmlinux,
        env=toolchain.env,
        level=LogLevel.DEBUG,
    ))
    return SymbolSizes(result.stdout.decode(errors="replace"))


@rule(desc="Package a tailored kernel")
async def package_tailored_kernel(fs: TailoredKernelFieldSet) -> BuiltPackage:
    out_dir = (await Get(OutputDir, OutputDirRequest(fs.address, fs.output_path))).path
    k = await Get(TailoredKernel, TailoredKernelFieldSet, fs)
    check = (await Get(AppCheck, AppCheckRequest(
        k, fs.address, ProcessCacheScope.SUCCESSFUL))).result
    trace_kernel = k.inputs.baseline.kernel
    mine_nm, theirs_nm = await MultiGet(
        Get(SymbolSizes, SymbolSizesRequest(k.build)),
        Get(SymbolSizes, SymbolSizesRequest(trace_kernel.build)),
    )
    built, trace_built, composed, results, stats = await MultiGet(
        Get(DigestContents, Digest, await Get(Digest, DigestSubset(
            k.build.digest, PathGlobs(["config", "sizes.json"])))),
        Get(DigestContents, Digest, await Get(Digest, DigestSubset(
            trace_kernel.build.digest, PathGlobs(["config", "sizes.json"])))),
        Get(DigestContents, Digest, k.composed.digest),
        Get(DigestContents, Digest, await Get(Digest, DigestSubset(
            check.output_digest, PathGlobs(["check/results.json"])))),
        Get(DigestContents, Digest, k.build.stats),
    )
    mine = {c.path: c.content.decode() for c in built}
    theirs = {c.path: c.content.decode() for c in trace_built}
    comp = {c.path: c.content.decode() for c in composed}
    app_results = json.loads(results[0].content) if results else [
        {"name": str(a.address), "passed": False, "reason": "the app check did not run: "
         + check.stderr.decode(errors="replace")[-300:]} for a, _ in k.inputs.apps]
    report = build_report(
        target=str(fs.address), baseline=str(trace_kernel.baseline),
        apps=[str(a.address) for a, _ in k.inputs.apps],
        tailored=parse_config(mine["config"]), trace=parse_config(theirs["config"]),
        tailored_sizes=json.loads(mine["sizes.json"]), trace_sizes=json.loads(theirs["sizes.json"]),
        tailored_symbols=symbol_sizes(mine_nm.nm_output),
        trace_symbols=symbol_sizes(theirs_nm.nm_output),
        compose_stats=json.loads(comp["compose.json"]),
        build_stats=json.loads(stats[0].content) if stats else None,
        app_results=app_results,
        minimisation=json.loads((await _texts(k.minimisation))["minimise.json"])
        if k.minimisation else None)
    report_files = await Get(Digest, CreateDigest([
        FileContent("report.json", (json.dumps(report, indent=2, sort_keys=True) + "\n").encode()),
        FileContent("report.md", render_markdown(report).encode()),
    ]))
    digest = await Get(Digest, AddPrefix(await Get(Digest, MergeDigests(
        [k.build.digest, k.composed.digest, report_files,
         *([k.minimisation] if k.minimisation else [])])), out_dir))
    passed = sum(1 for r in app_results if r.get("passed"))
    o = report["options"]
    sizes = report["sizes"]
    summary = (f"{o['tailored']['enabled']} options enabled (trace kernel "
               f"{o['trace_kernel']['enabled']}); code {sizes['tailored']['code']} bytes (trace "
               f"kernel {sizes['trace_kernel']['code']}); {passed} of {len(app_results)} "
               "apps passed")
    if report["minimisation"]:
        m = report["minimisation"]
        summary += (f"; minimised in {m['cost']['tries']} tries, {len(m['removed'])} soft "
                    f"requirements left out" + ("" if m["complete"] else " (incomplete)"))
    names = ("bzImage", "vmlinux", "System.map", "config", "defconfig", "sizes.json",
             "requirements.json", "compose.json", "report.json", "report.md",
             *(("soft.json", "minimise.json") if k.minimisation else ()))
    return BuiltPackage(digest, tuple(
        BuiltPackageArtifact(os.path.join(out_dir, n),
                             extra_log_lines=(summary,) if n == "report.md" else ())
        for n in names))


# ---------------------------------------------------------------------------------------------
# test
# ---------------------------------------------------------------------------------------------


class TailoredKernelTestSubsystem(Subsystem):
    options_scope = "tailored-kernel-test"
    name = "tailored kernel test"
    help = "Runs every app's workload on `tailored_kernel` targets with `pants test`."

    skip = SkipOption("test")


@dataclass(frozen=True)
class TailoredKernelTestFieldSet(TestFieldSet):
    required_fields = (TailoredBaselineField,)

    baseline: TailoredBaselineField


class TailoredKernelTestRequest(TestRequest):
    tool_subsystem = TailoredKernelTestSubsystem
    field_set_type = TailoredKernelTestFieldSet


@rule(desc="Test a tailored kernel with its apps' workloads")
async def test_tailored_kernel(
    batch: TailoredKernelTestRequest.Batch[TailoredKernelTestFieldSet, Any],
    test_subsystem: TestSubsystem,
) -> TestResult:
    address = batch.single_element.address
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(
        address, description_of_origin="kernel_rules tailored kernel test"))
    k = await Get(TailoredKernel, TailoredKernelFieldSet, TailoredKernelFieldSet.create(
        wrapped.target))
    result = (await Get(AppCheck, AppCheckRequest(
        k, address,
        ProcessCacheScope.PER_SESSION if test_subsystem.force else ProcessCacheScope.SUCCESSFUL
    ))).result
    return TestResult.from_fallible_process_result(
        process_result=result, address=address, output_setting=test_subsystem.output)


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, TailoredKernelFieldSet),
        *TailoredKernelTestRequest.rules(),
    ]
