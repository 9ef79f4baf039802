"""`linux_source` -> a verified tarball digest."""

from __future__ import annotations

import os
import re
from typing import Optional, Tuple

from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.fs import Digest, DigestEntries, FileEntry
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import HydrateSourcesRequest, HydratedSources, SourcesField, Targets

from kernel_rules.rules.types import LinuxSource, LinuxSourceRequest
from kernel_rules.targets.source import (
    LinuxSourcePackageVersionField,
    LinuxSourceSha256Field,
    LinuxSourceTarballField,
    LinuxSourceVersionField,
)

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class LinuxSourceError(Exception):
    """A `linux_source` that is missing, of the wrong kind, or whose tarball fails its pin."""


async def single_file(field: SourcesField) -> Optional[Tuple[Digest, FileEntry]]:
    """The one file a single-file sources field names (its digest and entry, whose fingerprint
    is the file's sha256), or None when it does not exist."""
    sources = await Get(HydratedSources, HydrateSourcesRequest(field))
    if not sources.snapshot.files:
        return None
    entry = (await Get(DigestEntries, Digest, sources.snapshot.digest))[0]
    assert isinstance(entry, FileEntry)
    return sources.snapshot.digest, entry


@rule(desc="Verify the pinned Linux source tarball")
async def resolve_linux_source(request: LinuxSourceRequest) -> LinuxSource:
    targets = await Get(
        Targets,
        UnparsedAddressInputs(
            [request.spec],
            owning_address=request.owner,
            description_of_origin=f"the `source` field of {request.owner}",
        ),
    )
    tgt = targets[0]
    if not tgt.has_field(LinuxSourceTarballField):
        raise LinuxSourceError(
            f"{request.owner}: field `source` must name a `linux_source` target, but "
            f"{tgt.address} is a `{tgt.alias}`."
        )
    pinned = (tgt[LinuxSourceSha256Field].value or "").lower()
    if not SHA256_HEX.match(pinned):
        raise LinuxSourceError(
            f"{tgt.address}: field `sha256` must be 64 hex digits, got {pinned!r}."
        )
    found = await single_file(tgt[LinuxSourceTarballField])
    if found is None:
        raise LinuxSourceError(
            f"{tgt.address}: the tarball {tgt[LinuxSourceTarballField].value!r} does not exist. "
            "Run `./pants` once (its setup fetches it) or see docs/sources.md."
        )
    digest, entry = found
    actual = entry.file_digest.fingerprint
    if actual != pinned:
        raise LinuxSourceError(
            f"{tgt.address}: sha256 mismatch for {entry.path}:\n"
            f"  pinned in field `sha256`: {pinned}\n"
            f"  actual file:              {actual}\n"
            "Refusing to build from an unpinned source. If the new tarball is intended, update "
            "the pin (docs/sources.md); otherwise re-run the setup: ./pants --version"
        )
    return LinuxSource(
        tgt.address,
        digest,
        entry.path,
        pinned,
        tgt[LinuxSourceVersionField].value or "",
        tgt[LinuxSourcePackageVersionField].value or "",
    )


def tarball_in_sandbox(source: LinuxSource) -> str:
    """Where `source`'s tarball appears in a sandbox that mounts it as `linux_source/`."""
    return os.path.join("linux_source", source.filename)


def rules():
    return collect_rules()
