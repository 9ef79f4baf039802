"""Dependency inference: the BUILD graph of the kernel pipeline.

Every address-valued field becomes a dependency edge: `kernel_image.source` and
`prebuilt_kernel.source` (the `linux_source`), `kernel_baseline.kernel` (the trace kernel),
`app_profile.baseline`, `tailored_kernel.baseline` and `apps`. A `kernel_image` fragment outside
the target's directory (`../minimal/boot.config`) becomes an edge to the target that owns that
file, since Pants looks for a changed file's owners only in its directory and the directories
above. With these edges `pants dependencies`, `dependents`, `peek` and `--changed-since
--changed-dependents=transitive` see which kernels a change affects.

The edges only describe the graph: the rules resolve the address fields themselves, as before,
and never read `dependencies`. Inference resolves each address with the same description as the
rules (`the `baseline` field of <target>`), so a missing target is the same error either way; an
app profile's or baseline's files are hydrated too, so a missing workload, program, data file or
boot script is an error of `pants dependencies` (and of `--changed-dependents`), before any build.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, List, Sequence

from pants.engine.addresses import Address, UnparsedAddressInputs
from pants.engine.internals.graph import Owners, OwnersRequest
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    FieldSet,
    HydratedSources,
    HydrateSourcesRequest,
    InferDependenciesRequest,
    InferredDependencies,
    SourcesField,
    Targets,
)
from pants.engine.unions import UnionRule

from kernel_rules.targets.app_profile import (
    AppBaselineField,
    AppFilesField,
    AppProgramsField,
    AppWorkloadField,
)
from kernel_rules.targets.baseline import BaselineBootScriptField, BaselineKernelField
from kernel_rules.targets.fields import KernelDependenciesField
from kernel_rules.targets.kernel_image import KernelFragmentsField, KernelSourceField
from kernel_rules.targets.prebuilt import PrebuiltSourceField
from kernel_rules.targets.tailored import TailoredAppsField, TailoredBaselineField

logger = logging.getLogger(__name__)


async def named_addresses(values: Iterable[str], owner: Address, alias: str) -> List[Address]:
    """The addresses of the targets an address-valued field names, resolved as the rules resolve
    them (an error naming the field and `owner` when one does not exist)."""
    values = tuple(values)
    if not values:
        return []
    targets = await Get(
        Targets,
        UnparsedAddressInputs(
            values, owning_address=owner, description_of_origin=f"the `{alias}` field of {owner}"
        ),
    )
    return [t.address for t in targets]


def outside(spec_path: str, path: str) -> bool:
    """Whether `path` (relative to the build root) lies outside the directory `spec_path` and its
    subdirectories, where Pants' owner lookup would not find the target in `spec_path`."""
    return bool(spec_path) and not path.startswith(spec_path + "/")


async def hydrate_all(fields: Sequence[SourcesField]) -> None:
    """Hydrate `fields` for their validation: files that do not exist, wrong extensions."""
    await MultiGet(Get(HydratedSources, HydrateSourcesRequest(f)) for f in fields)


@dataclass(frozen=True)
class KernelImageDependenciesFieldSet(FieldSet):
    required_fields = (KernelSourceField, KernelDependenciesField)

    source: KernelSourceField
    fragments: KernelFragmentsField


class InferKernelImageDependencies(InferDependenciesRequest):
    infer_from = KernelImageDependenciesFieldSet


@rule(desc="Infer a kernel_image's dependencies")
async def infer_kernel_image_dependencies(
    request: InferKernelImageDependencies,
) -> InferredDependencies:
    fs = request.field_set
    found = await named_addresses([fs.source.value], fs.address, KernelSourceField.alias)
    elsewhere = tuple(p for p in fs.fragments.repo_paths if outside(fs.address.spec_path, p))
    per_file = await MultiGet(Get(Owners, OwnersRequest((p,))) for p in elsewhere)
    for path, owners in zip(elsewhere, per_file):
        others = [a for a in owners if a != fs.address]
        if not others:
            logger.warning(
                f"{fs.address}: field `{KernelFragmentsField.alias}`: no target owns {path}, "
                "so `--changed-since` cannot tell that a change to it affects this kernel. "
                "Declare a target that owns it in its directory (e.g. `files(sources=[...])`)."
            )
        found += others
    return InferredDependencies(found)


@dataclass(frozen=True)
class BaselineDependenciesFieldSet(FieldSet):
    required_fields = (BaselineKernelField, KernelDependenciesField)

    kernel: BaselineKernelField
    boot_script: BaselineBootScriptField


class InferBaselineDependencies(InferDependenciesRequest):
    infer_from = BaselineDependenciesFieldSet


@rule(desc="Infer a kernel_baseline's dependencies")
async def infer_baseline_dependencies(request: InferBaselineDependencies) -> InferredDependencies:
    fs = request.field_set
    await hydrate_all([fs.boot_script])
    return InferredDependencies(
        await named_addresses([fs.kernel.value], fs.address, BaselineKernelField.alias)
    )


@dataclass(frozen=True)
class AppDependenciesFieldSet(FieldSet):
    required_fields = (AppBaselineField, KernelDependenciesField)

    baseline: AppBaselineField
    workload: AppWorkloadField
    programs: AppProgramsField
    files: AppFilesField


class InferAppDependencies(InferDependenciesRequest):
    infer_from = AppDependenciesFieldSet


@rule(desc="Infer an app_profile's dependencies")
async def infer_app_dependencies(request: InferAppDependencies) -> InferredDependencies:
    fs = request.field_set
    await hydrate_all([fs.workload, fs.programs, fs.files])
    return InferredDependencies(
        await named_addresses([fs.baseline.value], fs.address, AppBaselineField.alias)
    )


@dataclass(frozen=True)
class TailoredDependenciesFieldSet(FieldSet):
    required_fields = (TailoredBaselineField, KernelDependenciesField)

    baseline: TailoredBaselineField
    apps: TailoredAppsField


class InferTailoredDependencies(InferDependenciesRequest):
    infer_from = TailoredDependenciesFieldSet


@rule(desc="Infer a tailored_kernel's dependencies")
async def infer_tailored_dependencies(request: InferTailoredDependencies) -> InferredDependencies:
    fs = request.field_set
    baseline = await named_addresses([fs.baseline.value], fs.address, TailoredBaselineField.alias)
    apps = await named_addresses(fs.apps.value or (), fs.address, TailoredAppsField.alias)
    return InferredDependencies([*baseline, *apps])


@dataclass(frozen=True)
class PrebuiltDependenciesFieldSet(FieldSet):
    required_fields = (PrebuiltSourceField, KernelDependenciesField)

    source: PrebuiltSourceField


class InferPrebuiltDependencies(InferDependenciesRequest):
    infer_from = PrebuiltDependenciesFieldSet


@rule(desc="Infer a prebuilt_kernel's dependencies")
async def infer_prebuilt_dependencies(request: InferPrebuiltDependencies) -> InferredDependencies:
    fs = request.field_set
    return InferredDependencies(
        await named_addresses([fs.source.value], fs.address, PrebuiltSourceField.alias)
    )


def rules():
    return [
        *collect_rules(),
        UnionRule(InferDependenciesRequest, InferKernelImageDependencies),
        UnionRule(InferDependenciesRequest, InferBaselineDependencies),
        UnionRule(InferDependenciesRequest, InferAppDependencies),
        UnionRule(InferDependenciesRequest, InferTailoredDependencies),
        UnionRule(InferDependenciesRequest, InferPrebuiltDependencies),
    ]
