"""Debian's prebuilt kernels as trace kernels: unpack the packages, check them, measure them.

A prebuilt trace kernel is two Debian packages of one kernel build:
- the image package (`linux-image-<abi>-<flavour>-unsigned`): `boot/vmlinuz-<release>`,
  `boot/config-<release>`, `boot/System.map-<release>` and the modules under
  `lib/modules/<release>/`;
- its debug package (`...-dbg`): the DWARF `vmlinux` under `usr/lib/debug/boot/` and one debug
  file per module under `usr/lib/debug/lib/modules/<release>/`.

Subcommands (run as `python3 -m kernel_rules.domain.prebuilt.debian ...`):

`unpack`: checks that both packages are of the same version and that it matches the source the
  tailored kernels are built from, then writes to --out: `bzImage` (the vmlinuz), `vmlinux` (with
  DWARF), `config`, `System.map` (from the debug package), `sizes.json` (as a Kbuild build writes it; object sizes are
  measured from the vmlinux's function symbols, each attributed to the source file of
  its compilation unit, and from the modules' `.ko` files) and `prebuilt.json` (release, package
  version, the path prefix of the DWARF file names), and `layout.json` (domain.introspect.layout;
  its structure layouts are read by pahole from the DWARF).
`modules`: the `.ko` files of the named modules and of everything they depend on (their
  `.modinfo` `depends=`), at `lib/modules/<release>/...`, and `etc/kernel_rules/modules`: their
  paths relative to `lib/modules/<release>/`, one a line, in load order.

The debug package is 1.7 GB unpacked: it is unpacked once per sha256 into the kernel_rules cache
(`debug_tree`), which the mapping step also uses for module debug files.

Exit codes: 0 success; 3 a package that does not fit (the message names it, on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

MODULE_LIST = "etc/kernel_rules/modules"
DEBUG_ROOT = "usr/lib/debug"


class PrebuiltError(Exception):
    """A package that is not what its target says it is; the message names it."""


def package_field(deb: str, field: str) -> str:
    out = subprocess.run(["dpkg-deb", "-f", deb, field], capture_output=True, text=True)
    if out.returncode != 0:
        raise PrebuiltError(f"{deb}: not a Debian package ({out.stderr.strip()})")
    return out.stdout.strip()


def release_of(package: str) -> str:
    """`linux-image-6.1.0-56-cloud-amd64-unsigned` (or `-dbg`) -> `6.1.0-56-cloud-amd64`."""
    m = re.match(r"^linux-image-(.+?)(?:-unsigned|-dbg)?$", package)
    if not m:
        raise PrebuiltError(f"{package!r} is not a linux-image package")
    return m.group(1)


def check_versions(
    image_version: str, debug_version: str, source_version: str, source_package_version: str
) -> None:
    """The image and debug packages come from one build, and that build is of the source the
    tailored kernels are built from (its Debian version when known, else its upstream version)."""
    if image_version != debug_version:
        raise PrebuiltError(
            f"the image package is version {image_version} but the debug package "
            f"is {debug_version}: they must come from the same build"
        )
    if source_package_version:
        if image_version != source_package_version:
            raise PrebuiltError(
                f"the prebuilt kernel is Debian {image_version} but the source is Debian "
                f"{source_package_version}: traces would map to other source lines than the "
                "tailored kernels are built from. Pin matching versions (docs/debian-cloud.md)."
            )
    elif image_version.split("-")[0] != source_version:
        raise PrebuiltError(
            f"the prebuilt kernel is Linux {image_version} but the source is {source_version}"
        )


def _extract(deb: str, dest: str, members: Sequence[str] = ()) -> None:
    """Unpack `deb` (all of it, or only `members`, tar paths like `./boot/...`) into `dest`."""
    os.makedirs(dest, exist_ok=True)
    fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    tar = subprocess.run(
        ["tar", "-x", "-f", "-", "-C", dest, *members],
        stdin=fsys.stdout,
        capture_output=True,
        text=True,
    )
    fsys.stdout.close()
    if fsys.wait() != 0 or tar.returncode != 0:
        raise PrebuiltError(f"{deb}: unpacking failed: {tar.stderr.strip()[-2000:]}")


PREBUILT_KEPT = 2  # unpacked debug packages kept (the most recently used; 1.7 GB each)


def debug_tree(cache: str, deb: str, sha256: str) -> str:
    """The debug package unpacked under `cache`, once per sha256 (locked; safe to share; unused
    ones evicted, see domain.build.warm_trees.unpack_once)."""
    from kernel_rules.domain.build.warm_trees import unpack_once

    def fill(tmp: str) -> None:
        print(f"kernel_rules: unpacking {os.path.basename(deb)} (once per sha256)", file=sys.stderr)
        _extract(deb, tmp)

    return unpack_once(os.path.join(cache, "prebuilt"), sha256, fill, PREBUILT_KEPT)


# --- sizes ---------------------------------------------------------------------------------------


def _outer_files(addr2line_out: Iterable[str]) -> List[str]:
    """The file of the outermost frame of each address in `addr2line -a -i` output."""
    files: List[str] = []
    current: Optional[str] = None
    for line in addr2line_out:
        if line.startswith("0x"):
            if current is not None:
                files.append(current)
            current = "??"
        else:
            current = line.rsplit(":", 1)[0]
    if current is not None:
        files.append(current)
    return files


def symbol_object_sizes(vmlinux: str, prefix: str, srctree: Optional[str]) -> Dict[str, int]:
    """{source file: bytes of its functions}, each function attributed to the source file of its
    compilation unit (the outermost addr2line frame). Data symbols are left out: addr2line finds
    no line for them, and looking costs ~10 ms each. Files outside `prefix` (generated code) and
    files not in `srctree` (if given) are left out too."""
    nm = subprocess.run(
        ["nm", "-S", "--defined-only", vmlinux], capture_output=True, text=True, check=True
    ).stdout
    symbols: List[Tuple[int, int]] = []
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tT":
            symbols.append((int(parts[0], 16), int(parts[1], 16)))
    symbols.sort()
    text = "".join(f"{a:#x}\n" for a, _ in symbols)
    out = subprocess.run(
        ["addr2line", "-a", "-i", "-e", vmlinux],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sizes: Dict[str, int] = defaultdict(int)
    for (_, size), path in zip(symbols, _outer_files(out.splitlines())):
        if path.startswith(prefix) and path.endswith((".c", ".S")):
            rel = path[len(prefix) :]
            if srctree is None or os.path.exists(os.path.join(srctree, rel)):
                sizes[rel] += size
    return dict(sizes)


def module_object_sizes(modules_dir: str, srctree: Optional[str]) -> Dict[str, int]:
    """{`<dir>/<name>.c`: text + data + bss of `<dir>/<name>.ko`} for modules whose source file
    of the same name exists (multi-object modules are left to the default weight)."""
    kos = sorted(
        os.path.join(d, n)
        for d, _, names in os.walk(modules_dir)
        for n in names
        if n.endswith(".ko")
    )
    if not kos:
        return {}
    out = subprocess.run(["size", *kos], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        ko = parts[-1]
        rel = os.path.relpath(ko, os.path.join(modules_dir, "kernel"))[:-3] + ".c"
        if srctree is None or os.path.exists(os.path.join(srctree, rel)):
            sizes[rel] = int(parts[0]) + int(parts[1]) + int(parts[2])
    return sizes


def _size(path: str) -> List[int]:
    out = subprocess.run(["size", path], capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.splitlines()[1].split()[:3]]


def dwarf_prefix(vmlinux: str, system_map: str) -> str:
    """The prefix of source paths in the DWARF (e.g. `debian/build/build_amd64_none_cloud-amd64/`),
    found from where `start_kernel` (in init/main.c) is said to be."""
    with open(system_map) as f:
        address = next(
            (line.split()[0] for line in f if line.rstrip().endswith(" start_kernel")), None
        )
    if address is None:
        raise PrebuiltError(f"{system_map}: no start_kernel symbol")
    out = subprocess.run(
        ["addr2line", "-e", vmlinux, "0x" + address], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = out.rsplit(":", 1)[0]
    if not path.endswith("init/main.c"):
        raise PrebuiltError(
            f"{vmlinux}: start_kernel maps to {out!r}, not init/main.c: "
            "is this the debug vmlinux of that kernel?"
        )
    return path[: -len("init/main.c")]


def unpack(
    image_deb: str,
    debug_deb: str,
    debug_sha256: str,
    cache: str,
    source_version: str,
    source_package_version: str,
    srctree: Optional[str],
    out: str,
) -> dict:
    image_pkg, debug_pkg = package_field(image_deb, "Package"), package_field(debug_deb, "Package")
    release = release_of(image_pkg)
    if release_of(debug_pkg) != release or not debug_pkg.endswith("-dbg"):
        raise PrebuiltError(f"{debug_deb}: {debug_pkg} is not the debug package of {image_pkg}")
    version = package_field(image_deb, "Version")
    check_versions(
        version, package_field(debug_deb, "Version"), source_version, source_package_version
    )
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _extract(image_deb, tmp)
        boot = os.path.join(tmp, "boot")
        for src, dst in ((f"vmlinuz-{release}", "bzImage"), (f"config-{release}", "config")):
            if not os.path.exists(os.path.join(boot, src)):
                raise PrebuiltError(f"{image_deb}: no boot/{src}")
            shutil.copyfile(os.path.join(boot, src), os.path.join(out, dst))
        dbg = debug_tree(cache, debug_deb, debug_sha256)
        vmlinux = os.path.join(dbg, DEBUG_ROOT, "boot", f"vmlinux-{release}")
        if not os.path.exists(vmlinux):
            raise PrebuiltError(f"{debug_deb}: no {DEBUG_ROOT}/boot/vmlinux-{release}")
        shutil.copyfile(vmlinux, os.path.join(out, "vmlinux"))
        # The image package's System.map is a placeholder; the real one is in the debug package.
        shutil.copyfile(
            os.path.join(dbg, DEBUG_ROOT, "boot", f"System.map-{release}"),
            os.path.join(out, "System.map"),
        )
        prefix = dwarf_prefix(vmlinux, os.path.join(out, "System.map"))
        objects = symbol_object_sizes(vmlinux, prefix, srctree)
        modules_dir = os.path.join(tmp, "lib/modules", release)
        for path, size in module_object_sizes(modules_dir, srctree).items():
            objects[path] = objects.get(path, 0) + size
        modules = sorted(
            os.path.relpath(os.path.join(d, n), modules_dir)
            for d, _, names in os.walk(modules_dir)
            for n in names
            if n.endswith(".ko")
        )
        modules_bytes = sum(os.path.getsize(os.path.join(modules_dir, m)) for m in modules)
    sizes = {
        "vmlinux": _size(os.path.join(out, "vmlinux")),
        "bzImage": os.path.getsize(os.path.join(out, "bzImage")),
        "objects": objects,
        "modules_bytes": modules_bytes,
    }
    with open(os.path.join(out, "sizes.json"), "w") as f:
        json.dump(sizes, f, indent=1, sort_keys=True)
        f.write("\n")
    info = {
        "release": release,
        "package": image_pkg,
        "version": version,
        "dwarf_prefix": prefix,
        "modules": len(modules),
    }
    with open(os.path.join(out, "prebuilt.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")
    write_layout(out, release)
    return info


def write_layout(out: str, release: str) -> None:
    """`layout.json` (domain.introspect.layout) of the unpacked kernel in `out`: there is no build
    tree to compile a probe in, so the structure layouts come from the debug package's DWARF, read
    by pahole."""
    from kernel_rules.domain.introspect import layout

    structs, absent = layout.pahole_layout(
        "pahole", os.path.join(out, "vmlinux"), layout.DEFAULT_FIELDS
    )
    layout.write_manifest(
        os.path.join(out, "layout.json"),
        out,
        arch="x86_64",
        release=release,
        structs=structs,
        absent=absent,
        config_name="config",
        source="pahole, from the debug package's DWARF",
    )


# --- modules -------------------------------------------------------------------------------------


def modinfo(ko: str) -> Dict[str, List[str]]:
    """The `.modinfo` section of a module file: key -> values."""
    from elftools.elf.elffile import ELFFile

    with open(ko, "rb") as f:
        section = ELFFile(f).get_section_by_name(".modinfo")
        data = section.data() if section is not None else b""
    out: Dict[str, List[str]] = defaultdict(list)
    for item in data.split(b"\0"):
        if b"=" in item:
            key, value = item.decode(errors="replace").split("=", 1)
            out[key].append(value)
    return out


def module_name(path: str) -> str:
    return os.path.basename(path)[: -len(".ko")].replace("-", "_")


def load_order(modules_dir: str, wanted: Sequence[str]) -> List[str]:
    """Paths (relative to `modules_dir`) of `wanted` and their dependencies, dependencies first,
    otherwise in the order asked. Unknown names raise PrebuiltError naming close matches."""
    by_name = {
        module_name(os.path.join(d, n)): os.path.relpath(os.path.join(d, n), modules_dir)
        for d, _, names in os.walk(modules_dir)
        for n in names
        if n.endswith(".ko")
    }
    order: List[str] = []

    def visit(name: str, chain: Tuple[str, ...]) -> None:
        key = name.replace("-", "_")
        if key not in by_name:
            import difflib

            close = difflib.get_close_matches(key, list(by_name), n=3)
            via = f" (needed by {' -> '.join(chain)})" if chain else ""
            raise PrebuiltError(
                f"no module `{name}`{via}"
                + (f"; did you mean {', '.join(close)}?" if close else "")
            )
        path = by_name[key]
        if path in order or key in chain:
            return
        for dep in modinfo(os.path.join(modules_dir, path)).get("depends", []):
            for d in filter(None, dep.split(",")):
                visit(d, chain + (key,))
        if path not in order:
            order.append(path)

    for name in wanted:
        visit(name, ())
    return order


def copy_modules(image_deb: str, wanted: Sequence[str], out: str) -> List[str]:
    release = release_of(package_field(image_deb, "Package"))
    with tempfile.TemporaryDirectory() as tmp:
        _extract(image_deb, tmp, ["./lib/modules"])
        modules_dir = os.path.join(tmp, "lib/modules", release)
        order = load_order(modules_dir, wanted)
        dest = os.path.join(out, "lib/modules", release)
        for rel in order:
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copyfile(os.path.join(modules_dir, rel), os.path.join(dest, rel))
    os.makedirs(os.path.join(out, os.path.dirname(MODULE_LIST)), exist_ok=True)
    with open(os.path.join(out, MODULE_LIST), "w") as f:
        f.writelines(f"{rel}\n" for rel in order)
    return order


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="prebuilt", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    u = sub.add_parser("unpack")
    u.add_argument("--image-deb", required=True)
    u.add_argument("--debug-deb", required=True)
    u.add_argument("--debug-sha256", required=True)
    u.add_argument("--cache", required=True)
    u.add_argument("--source-version", required=True)
    u.add_argument("--source-package-version", default="")
    u.add_argument("--srctree", help="the unpacked source (object sizes keep files it has)")
    u.add_argument("--tarball")
    u.add_argument("--tarball-sha256")
    u.add_argument("--out", required=True)
    m = sub.add_parser("modules")
    m.add_argument("--image-deb", required=True)
    m.add_argument("--module", action="append", default=[])
    m.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        if args.command == "unpack":
            srctree = args.srctree
            if args.tarball:
                from kernel_rules.domain.build.warm_trees import unpack_source

                srctree = unpack_source(args.cache, args.tarball, args.tarball_sha256)
            info = unpack(
                args.image_deb,
                args.debug_deb,
                args.debug_sha256,
                args.cache,
                args.source_version,
                args.source_package_version,
                srctree,
                args.out,
            )
            print(
                f"kernel_rules: {info['package']} {info['version']}: {info['modules']} modules",
                file=sys.stderr,
            )
        else:
            order = copy_modules(args.image_deb, args.module, args.out)
            print(
                f"kernel_rules: {len(order)} modules in load order: "
                + " ".join(module_name(o) for o in order),
                file=sys.stderr,
            )
    except PrebuiltError as e:
        print(f"kernel_rules: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
