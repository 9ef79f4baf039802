"""`tailored_kernel`: traced sets -> compose -> (minimise) -> build -> check apps.

`package` writes the kernel, its composed requirements, the app checks' console logs and a report
(`report.json`, rendered as `report.md` and `report.html` by `kernel_rules.domain.compose.report`);
`test` boots the kernel on the baseline's machine with every app's image and runs each workload.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, List, Optional, Tuple

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.core.goals.test import TestRequest, TestResult, TestSubsystem
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    Snapshot,
)
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import Targets, WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionRule
from pants.option.option_types import SkipOption
from pants.option.subsystem import Subsystem
from pants.util.logging import LogLevel

from kernel_rules.domain.compose.report import build_report, symbol_sizes
from kernel_rules.domain.kconfig.fragments import parse_config
from kernel_rules.domain.syscalls.verified import compare as compare_syscalls
from kernel_rules.domain.syscalls.verified import resources as kernel_resources
from kernel_rules.rules.compose import TailorError, digest_texts
from kernel_rules.rules.process import SANDBOX_SITE, DomainProcess, error_tail, user_error
from kernel_rules.rules.trace import one_target, app_baseline
from kernel_rules.rules.types import (
    BaselineBootCheckRequest,
    CheckedImage,
    AppCheck,
    AppCheckRequest,
    ComposeOptions,
    ComposeRequest,
    ComposedConfig,
    KernelBuild,
    KernelBuildRequest,
    MinimiseRequest,
    Minimised,
    OutputDir,
    OutputDirRequest,
    SymbolSizes,
    SymbolSizesRequest,
    SyscallProbe,
    SyscallProbeRequest,
    SyscallTable,
    SyscallTableRequest,
    TailoredInputs,
    TailoredKernel,
    Toolchain,
    ToolchainRequest,
    TracedApp,
    TracedBaseline,
)
from kernel_rules.subsystems import STEP_TIMEOUT
from kernel_rules.targets.app_profile import AppProfileFieldSet, AppWorkloadField
from kernel_rules.targets.baseline import BaselineFieldSet, BaselineKernelField
from kernel_rules.targets.tailored import TailoredKernelFieldSet, TailoredKernelTestFieldSet

logger = logging.getLogger(__name__)


@rule(desc="Trace a tailored kernel's baseline and apps")
async def tailored_inputs(fs: TailoredKernelFieldSet) -> TailoredInputs:
    baseline_tgt = await one_target(
        fs.baseline.value, fs.address, "baseline", BaselineKernelField, "kernel_baseline"
    )
    baseline_fs = BaselineFieldSet.create(baseline_tgt)
    app_tgts = await Get(
        Targets,
        UnparsedAddressInputs(
            fs.apps.value or (),
            owning_address=fs.address,
            description_of_origin=f"the `apps` field of {fs.address}",
        ),
    )
    app_fss: List[AppProfileFieldSet] = []
    for tgt in app_tgts:
        if not tgt.has_field(AppWorkloadField):
            raise TailorError(
                f"{fs.address}: field `apps`: {tgt.address} is a `{tgt.alias}`, "
                "not an `app_profile`."
            )
        app_fs = AppProfileFieldSet.create(tgt)
        traced_on = await app_baseline(app_fs)
        if traced_on.address != baseline_fs.address:
            raise TailorError(
                f"{fs.address}: field `apps`: {tgt.address} is traced on baseline "
                f"{traced_on.address}, but this kernel's baseline is {baseline_fs.address}; "
                "config sets of different trace kernels cannot be composed."
            )
        app_fss.append(app_fs)
    baseline = await Get(TracedBaseline, BaselineFieldSet, baseline_fs)
    apps = await MultiGet(Get(TracedApp, AppProfileFieldSet, a) for a in app_fss)
    return TailoredInputs(baseline, tuple(zip(app_fss, apps)))


async def checked_images(inputs: TailoredInputs) -> Optional[Tuple[CheckedImage, ...]]:
    """What a kernel of `inputs` is checked with (its minimisation's tries, `package`, `test`):
    its apps (None), or, with no apps, its baseline's boot check (the deployment, nothing
    added)."""
    if inputs.apps:
        return None
    return (await Get(CheckedImage, BaselineBootCheckRequest(inputs.baseline.kernel.baseline)),)


@rule(desc="Compose and build a tailored kernel")
async def tailored_kernel(fs: TailoredKernelFieldSet) -> TailoredKernel:
    inputs = await Get(TailoredInputs, TailoredKernelFieldSet, fs)
    if fs.minimise.value != "off":
        m = await Get(Minimised, MinimiseRequest(fs, inputs))
        return TailoredKernel(inputs, m.composed, m.build, m.record)
    composed = await Get(ComposedConfig, ComposeRequest(ComposeOptions.of(fs), inputs))
    build = await Get(KernelBuild, KernelBuildRequest(composed.config))
    return TailoredKernel(inputs, composed, build)


@rule(desc="Measure a vmlinux by its symbols", level=LogLevel.DEBUG)
async def symbol_sizes_of(request: SymbolSizesRequest) -> SymbolSizes:
    toolchain = await Get(Toolchain, ToolchainRequest(("nm",), "measuring kernels"))
    vmlinux = await Get(Digest, DigestSubset(request.build.digest, PathGlobs(["vmlinux"])))
    result = await Get(
        ProcessResult,
        Process(
            [toolchain.path("nm"), "-S", "--defined-only", "vmlinux"],
            description=f"Measure {request.build.address} (nm)",
            timeout_seconds=STEP_TIMEOUT,
            input_digest=vmlinux,
            env=toolchain.env,
            level=LogLevel.DEBUG,
        ),
    )
    return SymbolSizes(result.stdout.decode(errors="replace"))


async def render_report(address: Any, report: dict) -> Digest:
    """`report.json`, `report.md` and `report.html` of `report` (`build_report`'s dict): the
    JSON written here, the other two rendered from it by `kernel_rules.domain.compose.report`,
    whose Jinja2 comes from the sandbox site."""
    site = await Get(Snapshot, PathGlobs([f"{SANDBOX_SITE}/**", f"!{SANDBOX_SITE}/bin/**"]))
    if not any(f.startswith(f"{SANDBOX_SITE}/jinja2/") for f in site.files):
        raise TailorError(
            f"{address}: {SANDBOX_SITE}/ has no jinja2, which renders report.html: run ./pants "
            "once more (its setup installs third_party/python/sandbox-requirements.txt there)."
        )
    report_json = await Get(
        Digest,
        CreateDigest(
            [
                FileContent(
                    "report.json", (json.dumps(report, indent=2, sort_keys=True) + "\n").encode()
                )
            ]
        ),
    )
    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.compose.report",
            ("--report", "report.json", "--out", "out"),
            f"Render the report of {address}",
            ToolchainRequest((), "rendering reports"),
            input_digest=report_json,
            sandbox_site=site.digest,
            level=LogLevel.DEBUG,
        ),
    )
    problem = user_error(result)
    if problem is not None:
        raise TailorError(f"{address}: rendering report.json: {problem['error']}")
    if result.exit_code != 0:
        raise TailorError(
            f"{address}: rendering report.md and report.html failed (exit code "
            f"{result.exit_code}):\n" + error_tail(result)
        )
    rendered = await Get(Digest, RemovePrefix(result.output_digest, "out"))
    return await Get(Digest, MergeDigests([report_json, rendered]))


async def probe_both(k: TailoredKernel, address: Any) -> tuple:
    """The syscall probe of the tailored kernel and of its trace kernel, one after the other (so
    the two boots' benchmarks do not share the CPU), and the source's syscall -> Kconfig table:
    (tailored SyscallProbe, trace kernel SyscallProbe, syscall-kconfig.json document)."""
    trace_kernel = k.inputs.baseline.kernel
    mine_bz, trace_bz = await MultiGet(
        Get(Digest, DigestSubset(k.build.digest, PathGlobs(["bzImage"]))),
        Get(Digest, DigestSubset(trace_kernel.build.digest, PathGlobs(["bzImage"]))),
    )
    trace_label = f"{trace_kernel.config.address} on {trace_kernel.baseline}"
    theirs = await Get(
        SyscallProbe,
        SyscallProbeRequest(
            trace_bz, trace_label, trace_kernel.machine, trace_kernel.modules, trace_bz
        ),
    )
    mine = await Get(
        SyscallProbe,
        SyscallProbeRequest(
            mine_bz, str(address), trace_kernel.machine, trace_kernel.modules, trace_bz
        ),
    )
    table = await Get(SyscallTable, SyscallTableRequest(trace_kernel.config.source))
    texts = await digest_texts(table.digest)
    return mine, theirs, json.loads(texts["syscall-kconfig.json"])


def _probe_doc(probe: SyscallProbe) -> Any:
    return json.loads(probe.probe_json) if probe.probe_json else None


def syscall_sections(
    mine: SyscallProbe,
    theirs: SyscallProbe,
    table: dict,
    tailored_config: dict,
    trace_config: dict,
    tailored_sizes: dict,
    trace_sizes: dict,
) -> tuple:
    """The report's `syscall_table` and `resources` sections from both probes; a probe that did
    not run to its end leaves `syscall_table` as {"error": ...} naming it and its reason."""
    a, b = _probe_doc(mine), _probe_doc(theirs)
    failed = [
        f"{label}: {(doc or {}).get('reason') or probe.summary[-600:]}"
        for label, doc, probe in (("tailored kernel", a, mine), ("trace kernel", b, theirs))
        if not doc or not doc.get("passed")
    ]
    if failed:
        section: dict = {"error": "the syscall probe did not complete on the " + "; ".join(failed)}
    else:
        section = compare_syscalls(a, b, table, tailored_config, trace_config)
    return section, kernel_resources(a, b, tailored_sizes, trace_sizes)


@rule(desc="Package a tailored kernel")
async def package_tailored_kernel(fs: TailoredKernelFieldSet) -> BuiltPackage:
    out_dir = (await Get(OutputDir, OutputDirRequest(fs.address, fs.output_path))).path
    k = await Get(TailoredKernel, TailoredKernelFieldSet, fs)
    check = (
        await Get(
            AppCheck,
            AppCheckRequest(
                k, fs.address, ProcessCacheScope.SUCCESSFUL, images=await checked_images(k.inputs)
            ),
        )
    ).result
    trace_kernel = k.inputs.baseline.kernel
    mine_nm, theirs_nm = await MultiGet(
        Get(SymbolSizes, SymbolSizesRequest(k.build)),
        Get(SymbolSizes, SymbolSizesRequest(trace_kernel.build)),
    )
    consoles = await Get(
        Digest, DigestSubset(check.output_digest, PathGlobs(["check/*.console.log"]))
    )
    mine_probe, trace_probe, syscall_kconfig = await probe_both(k, fs.address)
    unprefixed = await MultiGet(
        Get(Digest, RemovePrefix(p.digest, "probe")) for p in (mine_probe, trace_probe)
    )
    probe_files = await MultiGet(
        Get(Digest, AddPrefix(d, f"probe/{name}"))
        for name, d in zip(("tailored", "trace-kernel"), unprefixed)
    )
    probe_listing = await Get(Snapshot, MergeDigests(probe_files))
    built, trace_built, composed, results, stats, console_files = await MultiGet(
        Get(
            DigestContents,
            Digest,
            await Get(Digest, DigestSubset(k.build.digest, PathGlobs(["config", "sizes.json"]))),
        ),
        Get(
            DigestContents,
            Digest,
            await Get(
                Digest, DigestSubset(trace_kernel.build.digest, PathGlobs(["config", "sizes.json"]))
            ),
        ),
        Get(DigestContents, Digest, k.composed.digest),
        Get(
            DigestContents,
            Digest,
            await Get(Digest, DigestSubset(check.output_digest, PathGlobs(["check/results.json"]))),
        ),
        Get(DigestContents, Digest, k.build.stats),
        Get(Snapshot, Digest, consoles),
    )
    set_files = await MultiGet(
        Get(DigestContents, Digest, d)
        for d in [k.inputs.baseline.config_set.digest]
        + [t.config_set.digest for _, t in k.inputs.apps]
    )
    config_sets = [
        json.loads(c.content) for files in set_files for c in files if c.path == "config-set.json"
    ]
    mine = {c.path: c.content.decode() for c in built}
    theirs = {c.path: c.content.decode() for c in trace_built}
    comp = {c.path: c.content.decode() for c in composed}
    app_results = (
        json.loads(results[0].content)
        if results
        else [
            {
                "name": str(a.address),
                "passed": False,
                "reason": "the app check did not run: "
                + check.stderr.decode(errors="replace")[-300:],
            }
            for a, _ in k.inputs.apps
        ]
    )
    # check/<i>.console.log is the console of the i-th app of results.json.
    console_logs = {
        r["name"]: f"check/{i}.console.log"
        for i, r in enumerate(app_results)
        if results and f"check/{i}.console.log" in console_files.files
    }
    tailored_config, trace_config = parse_config(mine["config"]), parse_config(theirs["config"])
    syscall_table, resources = syscall_sections(
        mine_probe,
        trace_probe,
        syscall_kconfig,
        tailored_config,
        trace_config,
        json.loads(mine["sizes.json"]),
        json.loads(theirs["sizes.json"]),
    )
    report = build_report(
        target=str(fs.address),
        baseline=str(trace_kernel.baseline),
        apps=[str(a.address) for a, _ in k.inputs.apps],
        tailored=tailored_config,
        trace=trace_config,
        tailored_sizes=json.loads(mine["sizes.json"]),
        trace_sizes=json.loads(theirs["sizes.json"]),
        tailored_symbols=symbol_sizes(mine_nm.nm_output),
        trace_symbols=symbol_sizes(theirs_nm.nm_output),
        compose_stats=json.loads(comp["compose.json"]),
        build_stats=json.loads(stats[0].content) if stats else None,
        app_results=app_results,
        minimisation=json.loads((await digest_texts(k.minimisation))["minimise.json"])
        if k.minimisation
        else None,
        requirements=json.loads(comp["requirements.json"]),
        config_sets=config_sets,
        console_logs=console_logs,
        trace_kernel_kind="distribution" if trace_kernel.prebuilt else "built",
        syscall_table=syscall_table,
        resources=resources,
    )
    report_files = await render_report(fs.address, report)
    digest = await Get(
        Digest,
        AddPrefix(
            await Get(
                Digest,
                MergeDigests(
                    [
                        k.build.digest,
                        k.composed.digest,
                        report_files,
                        consoles,
                        probe_listing.digest,
                        *([k.minimisation] if k.minimisation else []),
                    ]
                ),
            ),
            out_dir,
        ),
    )
    passed = sum(1 for r in app_results if r.get("passed"))
    o = report["options"]
    sizes = report["sizes"]
    summary = (
        f"{o['tailored']['enabled']} options enabled (trace kernel "
        f"{o['trace_kernel']['enabled']}); code {sizes['tailored']['code']} bytes (trace "
        f"kernel {sizes['trace_kernel']['code']}); "
        + (
            f"{passed} of {len(app_results)} apps passed"
            if k.inputs.apps
            else "no apps: the baseline's boot check " + ("passed" if passed else "FAILED")
        )
    )
    if report["minimisation"]:
        m = report["minimisation"]
        vb = m.get("verified_baseline")
        summary += (
            f"; minimised in {m['cost']['tries']} tries, {len(m['removed'])} soft "
            f"requirements left out" + ("" if m["complete"] else " (incomplete)")
        )
        if vb:
            summary += (
                f"; on the verified baseline {vb['address']} ({vb['cost']['tries']} tries, "
                f"{vb['removed']} of {vb['considered']} left out"
                + ("" if vb["complete"] else ", incomplete")
                + ")"
            )
    names = (
        "bzImage",
        "vmlinux",
        "System.map",
        "config",
        "defconfig",
        "sizes.json",
        "layout.json",
        "volatility3-isf.json",
        "requirements.json",
        "compose.json",
        "report.json",
        "report.md",
        "report.html",
        *sorted(console_logs.values()),
        *probe_listing.files,
        *(("soft.json", "minimise.json", "verified-baseline.json") if k.minimisation else ()),
    )
    return BuiltPackage(
        digest,
        tuple(
            BuiltPackageArtifact(
                os.path.join(out_dir, n), extra_log_lines=(summary,) if n == "report.md" else ()
            )
            for n in names
        ),
    )


class TailoredKernelTestSubsystem(Subsystem):
    options_scope = "tailored-kernel-test"
    name = "tailored kernel test"
    help = "Runs every app's workload on `tailored_kernel` targets with `pants test`."

    skip = SkipOption("test")


class TailoredKernelTestRequest(TestRequest):
    tool_subsystem = TailoredKernelTestSubsystem
    field_set_type = TailoredKernelTestFieldSet


@rule(desc="Test a tailored kernel with its apps' workloads")
async def test_tailored_kernel(
    batch: TailoredKernelTestRequest.Batch[TailoredKernelTestFieldSet, Any],
    test_subsystem: TestSubsystem,
) -> TestResult:
    address = batch.single_element.address
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(address, description_of_origin="kernel_rules tailored kernel test"),
    )
    k = await Get(
        TailoredKernel, TailoredKernelFieldSet, TailoredKernelFieldSet.create(wrapped.target)
    )
    images = await checked_images(k.inputs)
    result = (
        await Get(
            AppCheck,
            AppCheckRequest(
                k,
                address,
                ProcessCacheScope.PER_SESSION
                if test_subsystem.force
                else ProcessCacheScope.SUCCESSFUL,
                images=images,
            ),
        )
    ).result
    return TestResult.from_fallible_process_result(
        process_result=result, address=address, output_setting=test_subsystem.output
    )


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, TailoredKernelFieldSet),
        *TailoredKernelTestRequest.rules(),
    ]
