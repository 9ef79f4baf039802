"""`kernel-explain` and `kernel-diff`: why a kernel has each option, and how two kernels differ.

Both goals gather a kernel's outputs (`KernelOutputsRequest -> KernelOutputs`: its `.config`,
and for a tailored kernel its requirements, config sets, trace kernel configuration and
minimisation record) and run `kernel_rules.domain.compose.explain` on them with the kernel's
source tarball (`ExplainRequest -> Explanation`); the goal prints the JSON or the text it wrote.
"""

from __future__ import annotations

import os
from typing import List, Optional

from pants.base.specs import RawSpecs, Specs
from pants.build_graph.address import BuildFileAddress, BuildFileAddressRequest
from pants.engine.console import Console
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
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule, rule
from pants.engine.target import Target, Targets
from pants.option.option_types import EnumOption, StrListOption, StrOption
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from kernel_rules.rules.process import CACHE_DIR, DomainProcess, error_tail, user_error
from kernel_rules.rules.source import tarball_in_sandbox
from kernel_rules.rules.toolchain import kbuild_toolchain_request
from kernel_rules.rules.types import (
    Explanation,
    ExplainRequest,
    KernelBuild,
    KernelBuildRequest,
    KernelConfig,
    KernelConfigRequest,
    KernelOutputs,
    KernelOutputsRequest,
    OutputFormat,
    PrebuiltKernel,
    PrebuiltKernelRequest,
    TailoredKernel,
)
from kernel_rules.targets.kernel_image import KernelImageFieldSet
from kernel_rules.targets.prebuilt import PrebuiltImageDebField
from kernel_rules.targets.tailored import TailoredKernelFieldSet

KERNEL_KINDS = "tailored_kernel, kernel_image or prebuilt_kernel"


class ExplainError(Exception):
    """A kernel-explain or kernel-diff request that cannot be answered; the message says why."""


class KernelExplainSubsystem(GoalSubsystem):
    name = "kernel-explain"
    help = (
        "Explain the value of Kconfig symbols in a kernel: for each `--symbol`, its value in the "
        "kernel's config and the chain that decided it (requirements and their traced "
        "file:line, `force`/`forbid`, `select`/`imply`/`depends on` links of the kernel's "
        "Kconfig with their file:line, defaults, minimisation tries, unmet dependencies). "
        "See docs/explain.md."
    )

    symbol = StrListOption(
        help="A Kconfig symbol to explain, with or without `CONFIG_` (repeat for more).",
    )
    format = EnumOption(
        default=OutputFormat.text,
        help="`text` (readable) or `json` (the kernel_rules/explanation@1 document).",
    )


class KernelExplain(Goal):
    subsystem_cls = KernelExplainSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


class KernelDiffSubsystem(GoalSubsystem):
    name = "kernel-diff"
    help = (
        "Compare two kernels: `pants kernel-diff A B` (kernel targets, in that order) or "
        "`pants kernel-diff --against=path/to/.config A`. Prints the options added, removed "
        "and changed from A to B with the reason on each side, grouped by Kconfig menu, and "
        "the code-size difference per source directory. See docs/explain.md."
    )

    against = StrOption(
        default=None,
        help="A `.config` file (a path relative to the build root) to compare the one kernel "
        "target with, as B.",
    )
    format = EnumOption(
        default=OutputFormat.text,
        help="`text` (readable) or `json` (the kernel_rules/kernel-diff@1 document).",
    )


class KernelDiff(Goal):
    subsystem_cls = KernelDiffSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


async def _files(digest: Digest) -> tuple:
    return tuple(sorted((await Get(Snapshot, Digest, digest)).files))


async def _subset(digest: Digest, *globs: str) -> Digest:
    return await Get(Digest, DigestSubset(digest, PathGlobs(globs)))


@rule(desc="Gather a kernel's outputs for kernel-explain/kernel-diff", level=LogLevel.DEBUG)
async def kernel_outputs(request: KernelOutputsRequest) -> KernelOutputs:
    tgt = request.target
    build_file = (
        await Get(
            BuildFileAddress,
            BuildFileAddressRequest(tgt.address, description_of_origin="kernel-explain"),
        )
    ).rel_path
    if TailoredKernelFieldSet.is_applicable(tgt):
        fs = TailoredKernelFieldSet.create(tgt)
        k = await Get(TailoredKernel, TailoredKernelFieldSet, fs)
        baseline = k.inputs.baseline
        sets = [(str(baseline.kernel.baseline), baseline.config_set.digest)]
        sets += [(str(a.address), t.config_set.digest) for a, t in k.inputs.apps]
        set_files = await MultiGet(
            Get(Digest, DigestSubset(d, PathGlobs(["config-set.json"]))) for _, d in sets
        )
        parts = await MultiGet(
            Get(Digest, AddPrefix(d, f"sets/{i}")) for i, d in enumerate(set_files)
        )
        trace = await Get(Digest, AddPrefix(baseline.kernel.config.digest, "trace"))
        digest = await Get(
            Digest,
            MergeDigests(
                [
                    k.composed.config.digest,
                    await _subset(k.composed.digest, "requirements.json"),
                    *([await _subset(k.build.digest, "sizes.json")] if request.sizes else []),
                    *([k.minimisation] if k.minimisation else []),
                    trace,
                    *parts,
                ]
            ),
        )
        config = k.composed.config
        labels = tuple(label for label, _ in sets)
        force = tuple(fs.force.value or ())
    elif KernelImageFieldSet.is_applicable(tgt):
        config = await Get(KernelConfig, KernelConfigRequest(KernelImageFieldSet.create(tgt)))
        parts = [config.digest]
        if request.sizes:
            build = await Get(KernelBuild, KernelBuildRequest(config))
            parts.append(await _subset(build.digest, "sizes.json"))
        digest = await Get(Digest, MergeDigests(parts))
        labels, force = (), ()
    elif tgt.has_field(PrebuiltImageDebField):
        prebuilt = await Get(PrebuiltKernel, PrebuiltKernelRequest(tgt))
        config = prebuilt.config
        parts = [config.digest]
        if request.sizes:
            parts.append(await _subset(prebuilt.build.digest, "sizes.json"))
        digest = await Get(Digest, MergeDigests(parts))
        labels, force = (), ()
    else:
        raise ExplainError(
            f"{tgt.address} is a `{tgt.alias}`, not a kernel: kernel-explain and kernel-diff "
            f"take a {KERNEL_KINDS} target."
        )
    files = await _files(digest)
    if ".config" not in files:
        raise ExplainError(f"{tgt.address}: this `{tgt.alias}` has no configuration file.")
    return KernelOutputs(
        tgt.address,
        tgt.alias,
        config.source,
        config.arch,
        digest,
        files,
        labels,
        build_file,
        force,
    )


def _kernel_args(prefix: str, dir_: str, k: KernelOutputs, label: str) -> List[str]:
    """The explain program's arguments for kernel `k`, whose files are under `dir_`."""
    args = [f"--{prefix}label", label, f"--{prefix}config", f"{dir_}/.config"]
    if "requirements.json" in k.files:
        args += [f"--{prefix}requirements", f"{dir_}/requirements.json"]
    if "trace/.config" in k.files:
        args += [f"--{prefix}universe", f"{dir_}/trace/.config"]
    if "minimise.json" in k.files:
        args += [f"--{prefix}minimise", f"{dir_}/minimise.json"]
    if "sizes.json" in k.files:
        args += [f"--{prefix}sizes", f"{dir_}/sizes.json"]
    for i, target in enumerate(k.sets):
        args += [f"--{prefix}set", f"{target}={dir_}/sets/{i}/config-set.json"]
    if k.build_file and k.alias != "file":
        args += [f"--{prefix}build-file", f"{k.address}={k.build_file}"]
    for line in k.force:
        args += [f"--{prefix}force={line}"]
    return args


@rule(desc="Explain a kernel's configuration", level=LogLevel.DEBUG)
async def explain_kernel(request: ExplainRequest) -> Explanation:
    k = request.kernel
    argv = [
        request.command,
        "--tarball",
        tarball_in_sandbox(k.source),
        "--sha256",
        k.source.sha256,
        "--cache",
        CACHE_DIR,
        "--arch",
        k.arch,
        "--out",
        "out",
        *_kernel_args("", "a", k, str(k.address)),
    ]
    inputs = [await Get(Digest, AddPrefix(k.digest, "a"))]
    for s in request.symbols:
        argv.append(f"--symbol={s}")
    other = request.other
    if other is not None:
        label = str(other.address) if other.alias != "file" else other.build_file
        argv += _kernel_args("b-", "b", other, label)
        inputs.append(await Get(Digest, AddPrefix(other.digest, "b")))
    what = (
        f"{len(request.symbols)} symbol(s) of {k.address}"
        if other is None
        else f"{k.address} against {str(other.address) if other.alias != 'file' else other.build_file}"
    )
    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.compose.explain",
            tuple(argv),
            f"{'Explain' if request.command == 'explain' else 'Diff'} {what}",
            kbuild_toolchain_request(),
            input_digest=await Get(Digest, MergeDigests(inputs)),
            immutable_inputs=FrozenDict({"linux_source": k.source.digest}),
            uses_cache=True,
        ),
    )
    report = user_error(result)
    if report is not None:
        prefix = k.address if other is None else "kernel-diff"
        raise ExplainError(f"{prefix}: {report['error']}")
    if result.exit_code != 0:
        raise ExplainError(
            f"{k.address}: kernel-{request.command} failed (exit code {result.exit_code}):\n"
            + error_tail(result)
        )
    out = await Get(Digest, RemovePrefix(result.output_digest, "out"))
    texts = {c.path: c.content.decode() for c in await Get(DigestContents, Digest, out)}
    return Explanation(texts["explain.json"], texts["explain.txt"])


@goal_rule
async def kernel_explain(
    console: Console, subsystem: KernelExplainSubsystem, targets: Targets
) -> KernelExplain:
    symbols = tuple(s.strip() for s in subsystem.symbol if s.strip())
    if not symbols:
        raise ExplainError(
            "kernel-explain: no symbols given: name one or more with --symbol=NAME "
            "(e.g. `pants kernel-explain --symbol=IPV6 examples/tailored:ipc`)."
        )
    if not targets:
        raise ExplainError(f"kernel-explain: name a kernel target ({KERNEL_KINDS}).")
    outputs = await MultiGet(Get(KernelOutputs, KernelOutputsRequest(t)) for t in targets)
    results = await MultiGet(
        Get(Explanation, ExplainRequest("explain", o, symbols)) for o in outputs
    )
    for r in results:
        console.print_stdout(
            r.json_text.rstrip("\n") if subsystem.format == OutputFormat.json else r.text.rstrip()
        )
    return KernelExplain(exit_code=0)


async def _against_file(path: str, kernel: KernelOutputs) -> KernelOutputs:
    """A `.config` file named by `--against`, as the B side of a diff (no sizes, no reasons
    beyond the Kconfig's)."""
    norm = os.path.normpath(path)
    if os.path.isabs(norm) or norm.startswith(".."):
        raise ExplainError(
            f"kernel-diff: --against={path}: name a file inside the build root, by a relative path."
        )
    snapshot = await Get(Snapshot, PathGlobs([norm]))
    if norm not in snapshot.files:
        raise ExplainError(
            f"kernel-diff: --against={path}: no such file (or one Pants ignores, such as "
            "anything under dist/: copy it elsewhere in the repository)."
        )
    contents = await Get(DigestContents, Digest, snapshot.digest)
    digest = await Get(Digest, CreateDigest([FileContent(".config", contents[0].content)]))
    return KernelOutputs(
        kernel.address, "file", kernel.source, kernel.arch, digest, (".config",), (), norm, ()
    )


async def _diff_targets(specs: Specs) -> List[Target]:
    """The kernel-diff arguments in command-line order: each must be one target's address."""
    raw = specs.includes
    if (
        raw.file_literals
        or raw.file_globs
        or raw.dir_literals
        or raw.dir_globs
        or raw.recursive_globs
        or raw.ancestor_globs
    ):
        raise ExplainError(
            "kernel-diff: name kernels by address (`pants kernel-diff dir:a dir:b`), not by "
            "a glob, directory or file; compare with a .config file with --against=PATH."
        )
    found = await MultiGet(
        Get(
            Targets,
            RawSpecs(address_literals=(lit,), description_of_origin="the kernel-diff arguments"),
        )
        for lit in raw.address_literals
    )
    return [t for targets in found for t in targets]


@goal_rule
async def kernel_diff(console: Console, subsystem: KernelDiffSubsystem, specs: Specs) -> KernelDiff:
    targets = await _diff_targets(specs)
    against: Optional[str] = subsystem.against
    if against is not None and len(targets) != 1:
        raise ExplainError(
            f"kernel-diff: --against compares one kernel target with a .config file; "
            f"got {len(targets)}."
        )
    if against is None and len(targets) != 2:
        raise ExplainError(
            "kernel-diff: name two kernel targets (`pants kernel-diff A B`), or one and "
            f"--against=path/to/.config before it; got {len(targets)}."
        )
    a = await Get(KernelOutputs, KernelOutputsRequest(targets[0], sizes=True))
    if against is not None:
        b = await _against_file(against, a)
    else:
        b = await Get(KernelOutputs, KernelOutputsRequest(targets[1], sizes=True))
    result = await Get(Explanation, ExplainRequest("diff", a, (), b))
    console.print_stdout(
        result.json_text.rstrip("\n")
        if subsystem.format == OutputFormat.json
        else result.text.rstrip()
    )
    return KernelDiff(exit_code=0)


def rules():
    return collect_rules()
