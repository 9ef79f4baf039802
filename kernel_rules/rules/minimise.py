"""Verified minimisation: which soft requirements can go, decided by booting candidates.

`kernel_rules.domain.compose.minimise` plans the tries; each try composes without a set of soft
requirements, builds the candidate and boots it (rules.boot.app_check), every try a cached fact.

Two levels. A baseline is verified once: its soft requirements (what ran only during kernel
initialisation) are bisected with its boot check (the baseline's machine, modules and boot step,
an empty window), which gives `VerifiedBaseline`. A tailored kernel then starts from it: its
first try leaves out everything the baseline's boot did not need, with every app's workload,
and only that delta (and, in `traced` mode, what the baseline did not decide) is searched.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, FrozenSet, Generator, List, Optional, Tuple

from pants.engine.fs import CreateDigest, Digest, DigestSubset, FileContent, MergeDigests, PathGlobs
from pants.engine.process import ProcessCacheScope
from pants.engine.addresses import Address
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.logging import LogLevel

from kernel_rules.domain.compose.minimise import (
    SoftGroup,
    groups_from_document,
    minimisation_record,
    plan,
    plan_on_verified_baseline,
    verified_baseline_summary,
    whole_groups,
)
from kernel_rules.domain.kconfig.fragments import parse_config
from kernel_rules.rules.compose import TailorError, digest_texts
from kernel_rules.rules.kbuild import KernelBuildError, KernelConfigError
from kernel_rules.rules.tailored import checked_images, logger
from kernel_rules.rules.trace import baseline_boot_script, one_target
from kernel_rules.rules.types import (
    AppCheck,
    AppCheckRequest,
    AppInitramfs,
    BaselineBootCheckRequest,
    BootCheckImageRequest,
    CheckedImage,
    ComposedConfig,
    ComposeOptions,
    ComposeRequest,
    KernelBuild,
    KernelBuildRequest,
    MinimiseRequest,
    Minimised,
    TailoredInputs,
    TailoredKernel,
    TraceKernel,
    TracedBaseline,
    VerifiedBaseline,
    VerifiedBaselineRequest,
)
from kernel_rules.targets.baseline import BaselineFieldSet, BaselineKernelField

BOOT_CHECK_TIMEOUT = 60  # seconds for the boot check's (empty) window


def _listing(names: List[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


@dataclass(frozen=True)
class _Verdict:
    passed: bool
    detail: dict
    composed: Optional[ComposedConfig] = None
    build: Optional[KernelBuild] = None


@dataclass(frozen=True)
class _Candidate:
    """What every try of one minimisation shares: the composition, its inputs and the soft
    mode, and the images to boot (None: the kernel's apps)."""

    options: ComposeOptions
    inputs: TailoredInputs
    soft: str
    images: Optional[Tuple[CheckedImage, ...]] = None


async def _minimisation_try(c: _Candidate, drop: Tuple[str, ...]) -> _Verdict:
    """Compose without `drop`, build, and boot with every image: one fact, cached by Pants like
    any other result (failed checks too: their cache scope is ALWAYS)."""
    try:
        composed = await Get(ComposedConfig, ComposeRequest(c.options, c.inputs, c.soft, drop))
        build = await Get(KernelBuild, KernelBuildRequest(composed.config))
    except (TailorError, KernelConfigError, KernelBuildError) as e:
        return _Verdict(
            False, {"reason": "the candidate did not compose or build: " + str(e)[-1500:]}
        )
    kernel = TailoredKernel(c.inputs, composed, build)
    check = (
        await Get(
            AppCheck,
            AppCheckRequest(
                kernel, c.options.address, ProcessCacheScope.ALWAYS, for_try=True, images=c.images
            ),
        )
    ).result
    files = await digest_texts(
        await Get(Digest, DigestSubset(build.digest, PathGlobs(["config", "sizes.json"])))
    )
    stats = await digest_texts(build.stats)
    sizes = json.loads(files["sizes.json"])
    detail = {
        "config_sha256": hashlib.sha256(files["config"].encode()).hexdigest(),
        "enabled": sum(1 for v in parse_config(files["config"]).values() if v in ("y", "m")),
        "bzImage": sizes["bzImage"],
        "text": sizes["vmlinux"][0],
        **_build_cost(stats),
    }
    if check.exit_code != 0:
        out = check.stdout.decode(errors="replace").splitlines()
        fails = [line[:300] for line in out if line.startswith("FAIL ")]
        detail["reason"] = "\n".join(fails + out[-25:])[-3000:]
    return _Verdict(check.exit_code == 0, detail, composed, build)


def _build_cost(stats: dict) -> dict:
    """Objects compiled and seconds of a try's build, from its (cached) build-stats.json."""
    data = json.loads(stats["build-stats.json"]) if stats else {}
    return {"objects_compiled": data.get("compiled"), "build_seconds": data.get("seconds")}


@dataclass
class _Search:
    """The outcome of running one planned search: every try, the last passing candidate."""

    tries: List[dict]
    accepted: FrozenSet[str]
    best: Optional[_Verdict]
    exhausted: bool


async def _run_search(
    label: str,
    search: Generator[FrozenSet[str], bool, Tuple[FrozenSet[str], List[str]]],
    groups: List[SoftGroup],
    budget: int,
    attempt: Callable[[Tuple[str, ...]], Awaitable[_Verdict]],
) -> _Search:
    """Feed `search` the verdicts of `attempt` until it ends or `budget` tries ran, logging a
    progress line before and after every try."""
    started = time.monotonic()
    soft_count = sum(len(g.symbols) for g in groups)
    out = _Search([], frozenset(), None, False)
    try:
        candidate = next(search)
        while True:
            if len(out.tries) >= budget:
                out.exhausted = True
                break
            delta = sorted(candidate - out.accepted)
            whole = whole_groups(groups, delta, candidate)
            logger.info(
                f"{label}: minimisation try {len(out.tries) + 1} of at most {budget} "
                f"({round(time.monotonic() - started)} s so far): leaving out "
                f"{len(candidate)} of {soft_count} soft requirements; new: "
                + _listing(whole or delta)
            )
            verdict = await attempt(tuple(sorted(candidate)))
            out.tries.append(
                {
                    "try": len(out.tries) + 1,
                    "left_out": len(candidate),
                    "new": delta,
                    "new_groups": whole,
                    "passed": verdict.passed,
                    **verdict.detail,
                }
            )
            why = [
                line
                for line in verdict.detail.get("reason", "").splitlines()
                if line.startswith("FAIL ") or "did not compose" in line
            ][:1]
            logger.info(
                f"{label}: minimisation try {len(out.tries)}: "
                + ("passed" if verdict.passed else "failed")
                + (f" ({why[0][:200]})" if why else "")
                + (
                    f" ({verdict.detail['enabled']} options, text {verdict.detail['text']} bytes)"
                    if "enabled" in verdict.detail
                    else ""
                )
            )
            if verdict.passed:
                out.accepted, out.best = candidate, verdict
            candidate = search.send(verdict.passed)
    except StopIteration:
        pass
    return out


async def _soft_groups(c: _Candidate) -> Tuple[ComposedConfig, List[SoftGroup]]:
    first = await Get(ComposedConfig, ComposeRequest(c.options, c.inputs, c.soft))
    soft = await digest_texts(
        await Get(Digest, DigestSubset(first.digest, PathGlobs(["soft.json"])))
    )
    return first, groups_from_document(json.loads(soft["soft.json"]))


async def _json_file(name: str, doc: dict) -> Digest:
    return await Get(
        Digest,
        CreateDigest(
            [FileContent(name, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())]
        ),
    )


async def _baseline_fs(address: Address) -> BaselineFieldSet:
    return BaselineFieldSet.create(
        await one_target(str(address), address, "baseline", BaselineKernelField, "kernel_baseline")
    )


@rule(desc="Build a baseline's boot check", level=LogLevel.DEBUG)
async def baseline_boot_check(request: BaselineBootCheckRequest) -> CheckedImage:
    fs = await _baseline_fs(request.address)
    kernel = await Get(TraceKernel, BaselineFieldSet, fs)
    script, script_digest = await baseline_boot_script(fs)
    image = await Get(
        AppInitramfs,
        BootCheckImageRequest(str(fs.address), kernel.modules, script, script_digest),
    )
    return CheckedImage(f"{fs.address} (boot check)", image.digest, None, BOOT_CHECK_TIMEOUT)


@rule(desc="Verify a baseline by booting candidates")
async def verified_baseline(request: VerifiedBaselineRequest) -> VerifiedBaseline:
    address = request.address
    fs = await _baseline_fs(address)
    traced, boot_check = await MultiGet(
        Get(TracedBaseline, BaselineFieldSet, fs),
        Get(CheckedImage, BaselineBootCheckRequest(address)),
    )
    c = _Candidate(ComposeOptions(address), TailoredInputs(traced, ()), "baseline", (boot_check,))
    started = time.monotonic()
    _, groups = await _soft_groups(c)
    budget = fs.minimise_max_tries.value
    logger.info(
        f"{address}: verifying the baseline: {sum(len(g.symbols) for g in groups)} soft "
        f"requirements in {len(groups)} groups, at most {budget} tries (computed once, shared "
        "by every tailored kernel of this baseline)"
    )
    out = await _run_search(
        f"{address} (baseline)", plan(groups), groups, budget, lambda d: _minimisation_try(c, d)
    )
    record = minimisation_record(
        mode="baseline",
        groups=groups,
        tries=out.tries,
        removed=out.accepted,
        exhausted=out.exhausted,
        budget=budget,
        seconds=time.monotonic() - started,
    )
    record["baseline"] = str(address)
    considered = tuple(sorted(s for g in groups for s in g.symbols))
    logger.info(
        f"{address}: baseline verified after {len(out.tries)} tries: {len(out.accepted)} of "
        f"{len(considered)} soft requirements can go"
        + ("" if not out.exhausted else " (incomplete: minimise_max_tries ran out)")
    )
    return VerifiedBaseline(
        address,
        considered,
        tuple(sorted(out.accepted)),
        await _json_file("verified-baseline.json", record),
    )


@rule(desc="Minimise a tailored kernel by booting candidates")
async def minimise_tailored_kernel(request: MinimiseRequest) -> Minimised:
    fs, inputs = request.fs, request.inputs
    vb = await Get(VerifiedBaseline, VerifiedBaselineRequest(inputs.baseline.kernel.baseline))
    vb_record = json.loads((await digest_texts(vb.record))["verified-baseline.json"])
    c = _Candidate(ComposeOptions.of(fs), inputs, fs.minimise.value, await checked_images(inputs))
    started = time.monotonic()
    first, groups = await _soft_groups(c)
    out = await _run_search(
        str(fs.address),
        plan_on_verified_baseline(groups, vb.removed, vb.considered),
        groups,
        fs.minimise_max_tries.value,
        lambda d: _minimisation_try(c, d),
    )
    if out.best is None:
        composed = first
        build = await Get(KernelBuild, KernelBuildRequest(first.config))
    else:
        composed, build = out.best.composed, out.best.build
    record = minimisation_record(
        mode=fs.minimise.value,
        groups=groups,
        tries=out.tries,
        removed=out.accepted,
        exhausted=out.exhausted,
        budget=fs.minimise_max_tries.value,
        seconds=time.monotonic() - started,
        baseline=verified_baseline_summary(vb_record),
    )
    digest = await _json_file("minimise.json", record)
    logger.info(
        f"{fs.address}: minimisation done after {len(out.tries)} tries on the verified baseline "
        f"({len(vb.removed)} of its requirements out): left out {len(out.accepted)} of "
        f"{sum(len(g.symbols) for g in groups)} soft requirements"
    )
    return Minimised(composed, build, await Get(Digest, MergeDigests([digest, vb.record])))


def rules():
    return collect_rules()
