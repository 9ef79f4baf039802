"""Verified minimisation: which soft requirements can go, decided by booting candidates.

`kernel_rules.domain.compose.minimise` plans the tries; each try composes without a set of soft
requirements, builds the candidate and runs every app's workload on it (rules.boot.app_check).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import FrozenSet, List, Optional, Tuple

from pants.engine.fs import CreateDigest, Digest, DigestSubset, FileContent, PathGlobs
from pants.engine.process import ProcessCacheScope
from pants.engine.rules import Get, collect_rules, rule

from kernel_rules.domain.compose.minimise import (
    groups_from_document,
    minimisation_record,
    plan,
    whole_groups,
)
from kernel_rules.domain.kconfig.fragments import parse_config
from kernel_rules.rules.compose import TailorError, digest_texts
from kernel_rules.rules.kbuild import KernelBuildError, KernelConfigError
from kernel_rules.rules.tailored import logger
from kernel_rules.rules.types import (
    AppCheck,
    AppCheckRequest,
    ComposeRequest,
    ComposedConfig,
    KernelBuild,
    KernelBuildRequest,
    MinimiseRequest,
    Minimised,
    TailoredInputs,
    TailoredKernel,
)
from kernel_rules.targets.tailored import TailoredKernelFieldSet


def _listing(names: List[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


@dataclass(frozen=True)
class _Verdict:
    passed: bool
    detail: dict
    composed: Optional[ComposedConfig] = None
    build: Optional[KernelBuild] = None


async def _minimisation_try(
    fs: TailoredKernelFieldSet, inputs: TailoredInputs, drop: Tuple[str, ...]
) -> _Verdict:
    """Compose without `drop`, build, and run every app's workload: one fact, cached by Pants
    like any other result (failed app checks too: their cache scope is ALWAYS)."""
    try:
        composed = await Get(ComposedConfig, ComposeRequest(fs, inputs, fs.minimise.value, drop))
        build = await Get(KernelBuild, KernelBuildRequest(composed.config))
    except (TailorError, KernelConfigError, KernelBuildError) as e:
        return _Verdict(
            False, {"reason": "the candidate did not compose or build: " + str(e)[-1500:]}
        )
    kernel = TailoredKernel(inputs, composed, build)
    check = (
        await Get(
            AppCheck, AppCheckRequest(kernel, fs.address, ProcessCacheScope.ALWAYS, for_try=True)
        )
    ).result
    files = await digest_texts(
        await Get(Digest, DigestSubset(build.digest, PathGlobs(["config", "sizes.json"])))
    )
    stats = await digest_texts(build.stats)
    sizes = json.loads(files["sizes.json"])
    detail = {
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


@rule(desc="Minimise a tailored kernel by booting candidates")
async def minimise_tailored_kernel(request: MinimiseRequest) -> Minimised:
    fs, inputs = request.fs, request.inputs
    started = time.monotonic()
    first = await Get(ComposedConfig, ComposeRequest(fs, inputs, fs.minimise.value))
    soft = await digest_texts(
        await Get(Digest, DigestSubset(first.digest, PathGlobs(["soft.json"])))
    )
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
            logger.info(
                f"{fs.address}: minimisation try {len(tries) + 1} of at most {budget} "
                f"({round(time.monotonic() - started)} s so far): leaving out "
                f"{len(candidate)} of {soft_count} soft requirements; new: "
                + _listing(whole or delta)
            )
            verdict = await _minimisation_try(fs, inputs, tuple(sorted(candidate)))
            tries.append(
                {
                    "try": len(tries) + 1,
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
                f"{fs.address}: minimisation try {len(tries)}: "
                + ("passed" if verdict.passed else "failed")
                + (f" ({why[0][:200]})" if why else "")
                + (
                    f" ({verdict.detail['enabled']} options, text {verdict.detail['text']} bytes)"
                    if "enabled" in verdict.detail
                    else ""
                )
            )
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
        mode=fs.minimise.value,
        groups=groups,
        tries=tries,
        removed=accepted,
        exhausted=exhausted,
        budget=budget,
        seconds=time.monotonic() - started,
    )
    digest = await Get(
        Digest,
        CreateDigest(
            [
                FileContent(
                    "minimise.json", (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
                )
            ]
        ),
    )
    logger.info(
        f"{fs.address}: minimisation done after {len(tries)} tries: left out "
        f"{len(accepted)} of {soft_count} soft requirements"
    )
    return Minimised(composed, build, digest)


def rules():
    return collect_rules()
