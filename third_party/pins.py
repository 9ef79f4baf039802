#!/usr/bin/env python3
"""The Debian pins of kernel_rules, and the one command that moves them together.

Runs with the host's python3 and its standard library only (it is used by
third_party/setup.sh, before or without the project's virtualenv).

Pins that must move together (one Debian build of Linux 6.1):
  third_party/linux/linux-source.lock     debian_version, sha256 (of the tarball in the package)
  third_party/linux/BUILD                 linux_source: sha256, version, package_version
  third_party/debian/cloud-kernel.lock    image_package, debug_package, version, *_sha256
  third_party/debian/BUILD                prebuilt_kernel: image_deb, image_sha256, debug_deb, debug_sha256

Commands:
  pins.py move [VERSION]      move every pin above to Debian's VERSION of linux-source-6.1
                              (default: the newest the archive has); prints what changed and what
                              a maintainer must re-check
  pins.py check               exit 1, naming the file, when the pins above disagree
  pins.py lock-python REPORT  write third_party/python/requirements.lock from `pip install
                              --dry-run --report REPORT` output
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_LOCK = Path("third_party/linux/linux-source.lock")
SOURCE_BUILD = Path("third_party/linux/BUILD")
CLOUD_LOCK = Path("third_party/debian/cloud-kernel.lock")
CLOUD_BUILD = Path("third_party/debian/BUILD")
PYTHON_LOCK = Path("third_party/python/requirements.lock")
CLOUD_IMAGE = re.compile(r"^linux-image-(\d+\.\d+\.\d+-\d+)-cloud-amd64-unsigned$")


class PinError(Exception):
    """A pin cannot be read, found in the archive or moved; the message says which and why."""


# --- lock files and BUILD fields (pure) -----------------------------------------------------------


def read_lock(text: str) -> dict[str, str]:
    """`key=value` lines of a lock file; `#` comments and blank lines are skipped."""
    values = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def update_lock(text: str, values: dict[str, str]) -> str:
    """`text` with the value of every key in `values` replaced; comments and order are kept."""
    missing = set(values)
    out = []
    for line in text.splitlines(keepends=True):
        key = (
            line.split("=", 1)[0].strip()
            if "=" in line and not line.lstrip().startswith("#")
            else None
        )
        if key in values:
            out.append(f"{key}={values[key]}\n")
            missing.discard(key)
        else:
            out.append(line)
    if missing:
        raise PinError(f"keys not in the lock: {', '.join(sorted(missing))}")
    return "".join(out)


def build_field(text: str, field: str) -> str:
    """The string value of `field="..."` in a BUILD file that declares it exactly once."""
    found = re.findall(rf'\b{field}\s*=\s*"([^"]*)"', text)
    if len(found) != 1:
        raise PinError(f'expected one `{field}="..."`, found {len(found)}')
    return found[0]


def update_build(text: str, values: dict[str, str]) -> str:
    """`text` with each `field="..."` (declared exactly once) set to its new value."""
    for field, value in values.items():
        build_field(text, field)
        text = re.sub(
            rf'(\b{field}\s*=\s*")[^"]*(")', lambda m: m.group(1) + value + m.group(2), text
        )
    return text


def upstream_version(debian_version: str) -> str:
    """Debian's `6.1.192-3` (or `6.1.192-3+deb12u1`) -> the kernel's `6.1.192`."""
    match = re.fullmatch(r"(\d+\.\d+\.\d+)-[0-9A-Za-z.+~]+", debian_version)
    if not match:
        raise PinError(f"`{debian_version}` is not a Debian kernel version like 6.1.192-3")
    return match.group(1)


def cloud_packages(madison: str, version: str) -> tuple[str, str]:
    """The cloud image and debug package names of Debian's build `version`, from `apt-cache madison`
    output over the candidate image packages. Their names carry Debian's ABI number, which moves
    with the build (6.1.0-56 for 6.1.192-2, 6.1.0-57 for 6.1.192-3)."""
    names = sorted(
        {pkg for pkg, ver in _madison_rows(madison) if ver == version and CLOUD_IMAGE.match(pkg)}
    )
    if len(names) != 1:
        raise PinError(
            f"expected one cloud image package of {version} in the archive, found "
            f"{len(names)}: {', '.join(names) or 'none'}"
        )
    image = names[0]
    return image, image[: -len("-unsigned")] + "-dbg"


def _madison_rows(madison: str) -> list[tuple[str, str]]:
    rows = []
    for line in madison.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 2 and parts[0] and parts[1]:
            rows.append((parts[0], parts[1]))
    return rows


def deb_sha256(show: str) -> str:
    """The SHA256 of a package's .deb, from `apt-cache show PKG=VERSION` output."""
    found = re.findall(r"^SHA256:\s*([0-9a-f]{64})$", show, re.M)
    if not found:
        raise PinError("no SHA256 in apt-cache show output")
    return found[0]


@dataclass(frozen=True)
class Pins:
    """Every value the pinned Debian build appears as, in the four files that hold them."""

    debian_version: str
    tarball_sha256: str
    image_package: str
    debug_package: str
    image_sha256: str
    debug_sha256: str

    def edits(self) -> dict[Path, tuple[str, dict[str, str]]]:
        """File -> (kind, field values), kind `lock` or `build`."""
        v = self.debian_version
        return {
            SOURCE_LOCK: ("lock", {"debian_version": v, "sha256": self.tarball_sha256}),
            SOURCE_BUILD: (
                "build",
                {
                    "sha256": self.tarball_sha256,
                    "version": upstream_version(v),
                    "package_version": v,
                },
            ),
            CLOUD_LOCK: (
                "lock",
                {
                    "image_package": self.image_package,
                    "debug_package": self.debug_package,
                    "version": v,
                    "image_sha256": self.image_sha256,
                    "debug_sha256": self.debug_sha256,
                },
            ),
            CLOUD_BUILD: (
                "build",
                {
                    "image_deb": f"debs/{self.image_package}_{v}_amd64.deb",
                    "image_sha256": self.image_sha256,
                    "debug_deb": f"debs/{self.debug_package}_{v}_amd64.deb",
                    "debug_sha256": self.debug_sha256,
                },
            ),
        }


def read_pins(root: Path) -> Pins:
    """The pins as the lock files hold them."""
    src = read_lock((root / SOURCE_LOCK).read_text())
    cloud = read_lock((root / CLOUD_LOCK).read_text())
    return Pins(
        src["debian_version"],
        src["sha256"],
        cloud["image_package"],
        cloud["debug_package"],
        cloud["image_sha256"],
        cloud["debug_sha256"],
    )


def disagreements(root: Path) -> list[str]:
    """Each place where a file holds another value than the lock files say, as `file: field`."""
    problems = []
    pins = read_pins(root)
    cloud_version = read_lock((root / CLOUD_LOCK).read_text()).get("version")
    if cloud_version != pins.debian_version:
        problems.append(
            f"{CLOUD_LOCK}: version={cloud_version}, but {SOURCE_LOCK} has "
            f"debian_version={pins.debian_version}"
        )
    for path, (kind, values) in pins.edits().items():
        text = (root / path).read_text()
        for field, want in values.items():
            got = read_lock(text).get(field) if kind == "lock" else build_field(text, field)
            if got != want:
                problems.append(f"{path}: {field} is {got!r}, the pins say {want!r}")
    return problems


def apply(root: Path, pins: Pins) -> list[str]:
    """Writes `pins` into the four files; returns `file: field: old -> new` for each change."""
    changes, writes = [], {}
    for path, (kind, values) in pins.edits().items():
        text = (root / path).read_text()
        old = {
            f: (read_lock(text).get(f) if kind == "lock" else build_field(text, f)) for f in values
        }
        try:
            writes[path] = (
                update_lock(text, values) if kind == "lock" else update_build(text, values)
            )
        except PinError as e:
            raise PinError(f"{path}: {e}") from None
        changes += [f"{path}: {f}: {old[f]} -> {v}" for f, v in values.items() if old[f] != v]
    for path, text in writes.items():  # only once every file could be edited
        (root / path).write_text(text)
    return changes


# --- the archive (apt) ----------------------------------------------------------------------------


def _run(args: list[str], **kw) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise PinError(f"`{' '.join(args)}` failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def archive_versions(package: str) -> list[str]:
    """The versions of `package` Debian's archive (as apt last saw it) has, newest first."""
    return [v for _, v in _madison_rows(_run(["apt-cache", "madison", package]))]


def _cloud_image_names() -> list[str]:
    out = _run(
        [
            "apt-cache",
            "search",
            "--names-only",
            r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$",
        ]
    )
    return [line.split(" ", 1)[0] for line in out.splitlines() if line.strip()]


def source_tarball_sha256(package: str, version: str, path_in_package: str) -> str:
    """The sha256 of the tarball inside `package`=`version`: read from /usr/src when that version is
    installed, else from the .deb, downloaded with apt-get into a temporary directory."""
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
    ).stdout
    if installed == version and Path(path_in_package).is_file():
        return sha256_file(Path(path_in_package))
    with tempfile.TemporaryDirectory() as tmp:
        print(f"pins: downloading {package} {version} to hash its tarball", file=sys.stderr)
        _run(["apt-get", "download", "-q", f"{package}={version}"], cwd=tmp)
        deb = next(Path(tmp).glob("*.deb"))
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        out = subprocess.Popen(
            ["tar", "-xO", "." + path_in_package], stdin=tar.stdout, stdout=subprocess.PIPE
        )
        tar.stdout.close()
        digest = hashlib.sha256()
        for block in iter(lambda: out.stdout.read(1 << 20), b""):
            digest.update(block)
        if out.wait() != 0 or tar.wait() != 0:
            raise PinError(f"{deb.name} has no {path_in_package}")
        return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(root: Path, version: str | None) -> Pins:
    """The pins of Debian's build `version` (default: the newest linux-source the archive has)."""
    src_lock = read_lock((root / SOURCE_LOCK).read_text())
    package, path_in_package = src_lock["debian_package"], src_lock["path_in_package"]
    versions = archive_versions(package)
    if not versions:
        raise PinError(f"Debian's archive has no {package} (run apt-get update?)")
    version = version or versions[0]
    if version not in versions:
        raise PinError(
            f"{package} {version} is not in Debian's archive; it has {', '.join(versions)}"
        )
    madison = _run(["apt-cache", "madison", *_cloud_image_names()])
    image, debug = cloud_packages(madison, version)
    if version not in archive_versions(debug):
        raise PinError(f"{debug} {version} is not in Debian's archive")
    return Pins(
        debian_version=version,
        tarball_sha256=source_tarball_sha256(package, version, path_in_package),
        image_package=image,
        debug_package=debug,
        image_sha256=deb_sha256(_run(["apt-cache", "show", f"{image}={version}"])),
        debug_sha256=deb_sha256(_run(["apt-cache", "show", f"{debug}={version}"])),
    )


RECHECK = """\
What a maintainer must re-check after moving the pins:
  - ./pants --version installs {package} {version} and verifies the new tarball; every kernel is
    rebuilt (the tarball's digest is in every cache key); examples/debian-cloud needs
    third_party/setup.sh --debian-cloud (the new packages, 310 MB).
  - the numbers measured on the old pins: README.md (the ipc table: options, bzImage bytes),
    docs/benchmarks.md and docs/benchmarks/*.md (re-run the benchmarks, docs/contributing.md),
    docs/debian-cloud.md; then ./run-tests.
"""


def move(root: Path, version: str | None) -> int:
    old = read_pins(root)
    new = resolve(root, version)
    changes = apply(root, new)
    if not changes:
        print(f"pins: already at Debian {new.debian_version}; nothing changed")
        return 0
    print(f"pins: moved from Debian {old.debian_version} to {new.debian_version}:")
    for change in changes:
        print(f"  {change}")
    stale = _mentions(
        root,
        [old.debian_version, old.image_package.split("-cloud")[0], old.tarball_sha256],
        exclude=set(new.edits()),
    )
    if stale:
        print("Files that still mention the old pins (check each):")
        for line in stale:
            print(f"  {line}")
    src_package = read_lock((root / SOURCE_LOCK).read_text())["debian_package"]
    print(RECHECK.format(package=src_package, version=new.debian_version), end="")
    return 0


def _mentions(root: Path, needles: list[str], exclude: set[Path]) -> list[str]:
    """`file:line` of each mention of a needle in the repository's tracked text files."""
    proc = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True, text=True)
    files = (
        proc.stdout.split()
        if proc.returncode == 0
        else [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
    )
    hits = []
    for name in files:
        path = Path(name)
        if path in exclude or path.suffix in {".json", ".lock"} or not (root / path).is_file():
            continue
        try:
            lines = (root / path).read_text().splitlines()
        except (UnicodeDecodeError, OSError):
            continue
        hits += [
            f"{path}:{n}" for n, line in enumerate(lines, 1) if any(x in line for x in needles)
        ]
    return hits


def lock_python(report: Path, root: Path) -> int:
    """requirements.lock from a pip installation report: every package, version and wheel sha256."""
    data = json.loads(report.read_text())
    rows = []
    for item in data["install"]:
        meta, archive = item["metadata"], item["download_info"].get("archive_info", {})
        sha = (archive.get("hashes") or {}).get("sha256") or archive.get("hash", "=").split("=", 1)[
            1
        ]
        if not sha:
            raise PinError(f"pip's report has no sha256 for {meta['name']}")
        rows.append(f"{meta['name']}=={meta['version']} --hash=sha256:{sha}")
    path = root / PYTHON_LOCK
    header = (
        [line for line in path.read_text().splitlines() if line.startswith("#")]
        if path.exists()
        else []
    )
    path.write_text("\n".join(header + sorted(rows, key=str.lower)) + "\n")
    print(f"pins: wrote {PYTHON_LOCK} ({len(rows)} packages)")
    return 0


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["move"] and len(argv) <= 2:
            return move(ROOT, argv[1] if len(argv) == 2 else None)
        if argv == ["check"]:
            problems = disagreements(ROOT)
            for p in problems:
                print(f"pins: {p}", file=sys.stderr)
            return 1 if problems else 0
        if argv[:1] == ["lock-python"] and len(argv) == 2:
            return lock_python(Path(argv[1]), ROOT)
    except PinError as e:
        print(f"pins: error: {e}", file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
