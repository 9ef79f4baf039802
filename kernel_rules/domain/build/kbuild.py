"""Configure and build a kernel with Kbuild, reproducibly, in warm trees.

This is the program that runs inside the Pants processes (`python3 -m
kernel_rules.domain.build.kbuild configure|build ...`). It uses only the standard library, plus
kconfiglib when a configuration check fails and must be explained.

Reproducibility: `KBUILD_BUILD_TIMESTAMP/USER/HOST/VERSION` are pinned and the absolute paths of
the source and of the output tree are mapped to `/kernel/src` and `/kernel/obj` in everything the
compiler and assembler emit (`-ffile-prefix-map`, which covers DWARF, `__FILE__` and the build-id
that hashes both), so a cold build, a warm incremental build and a build in another warm tree give
byte-identical bzImage and vmlinux.

Every configuration is checked before make sees it: fragment and base config values must be data
(`fragments`), and no path-valued option of the final `.config` may name a host file
(`config_policy`), so an error leaves the warm trees as they were.

Exit codes: 0 success; 3 a configuration check failed (report on stdout); 2 usage or input
error; anything else is Kbuild's own failure (its output tail is on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from kernel_rules.domain.kconfig import config_check
from kernel_rules.domain.kconfig.config_policy import check_final, check_requests
from kernel_rules.domain.kconfig.fragments import (
    FragmentError,
    decode,
    merge_requests,
    parse_config,
    parse_fragment,
)
from kernel_rules.domain.build import kbuild_deps, object_cache, progress
from kernel_rules.domain.build.warm_trees import (
    LAST_CONFIG,
    BuildCosts,
    TreePool,
    WarmTree,
    log,
    unpack_source,
)
from kernel_rules.domain.introspect import isf, layout

LAST_BUILD = ".kr-last-build.json"
# {object: [CONFIG symbols its dependency file names]} of the last build's objects
OBJECT_INDEX = ".kr-object-symbols.json"

BUILD_TIMESTAMP = "Thu Jan  1 00:00:00 UTC 1970"
PINNED_ENV = {
    "KBUILD_BUILD_TIMESTAMP": BUILD_TIMESTAMP,
    "KBUILD_BUILD_USER": "kernel_rules",
    "KBUILD_BUILD_HOST": "kernel_rules",
    "KBUILD_BUILD_VERSION": "1",
    "SOURCE_DATE_EPOCH": "0",
    "LC_ALL": "C",
    "TZ": "UTC",
}
CONFIG_TARGETS = (
    "tinyconfig",
    "allnoconfig",
    "defconfig",
    "allyesconfig",
    "allmodconfig",
    "alldefconfig",
    "x86_64_defconfig",
    "i386_defconfig",
)
_COMPILED = re.compile(r"^\s+(?:CC|AS)(?: \[M\])?\s+(\S+\.o)\s*$")


def make_argv(
    src: str,
    tree: str,
    arch: str,
    jobs: int,
    targets: Sequence[str],
    relative_src: bool = False,
) -> List[str]:
    """The `make` command line for `targets` in `tree`, with paths mapped out of the outputs.
    `relative_src` also maps the source's path relative to the tree: the object cache's ccache
    (its `base_dir`) rewrites the source paths of compiler calls that way, which the absolute
    map alone would leave in `__FILE__` and DWARF."""
    maps = f"-ffile-prefix-map={src}=/kernel/src -ffile-prefix-map={tree}=/kernel/obj"
    if relative_src:
        relative = os.path.relpath(os.path.realpath(src), os.path.realpath(tree))
        maps += f" -ffile-prefix-map={relative}=/kernel/src"
    return [
        "make",
        "--no-print-directory",
        "-C",
        src,
        f"O={tree}",
        f"ARCH={arch}",
        f"-j{jobs}",
        f"KCFLAGS={maps}",
        f"KAFLAGS={maps}",
        *targets,
    ]


def run_make(
    src: str,
    tree: str,
    arch: str,
    jobs: int,
    targets: Sequence[str],
    on_compiled: Optional[Callable[[int], None]] = None,
    extra_env: Optional[Mapping[str, str]] = None,
) -> List[str]:
    """Run make; return the objects Kbuild reported compiling, as normalised paths relative to
    the tree (`arch/x86/kvm/../../../virt/kvm/eventfd.o` is `virt/kvm/eventfd.o`). The kallsyms
    tables assembled while linking vmlinux (`.tmp_vmlinux.kallsyms*.o`) are part of the link, not
    compiled objects. `on_compiled(n)` is called after each of them. `extra_env` is added to
    make's environment: it is only ever the object cache's, so with it the command line also maps
    the relative source path (`make_argv(relative_src=True)`). Raises CalledProcessError."""
    env = {**os.environ, **(extra_env or {}), **PINNED_ENV}
    proc = subprocess.Popen(
        make_argv(src, tree, arch, jobs, targets, relative_src=bool(extra_env)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    compiled, tail = [], []
    assert proc.stdout is not None
    for line in proc.stdout:
        m = _COMPILED.match(line)
        if m and not m.group(1).startswith(".tmp_vmlinux"):
            compiled.append(os.path.normpath(m.group(1)))
            if on_compiled is not None:
                on_compiled(len(compiled))
        tail = (tail + [line.rstrip("\n")])[-60:]
    if proc.wait() != 0:
        print("\n".join(tail), file=sys.stderr)
        raise subprocess.CalledProcessError(proc.returncode, "make " + " ".join(targets))
    return compiled


def _write_config(tree: str, text: str) -> None:
    path = os.path.join(tree, ".config")
    try:
        with open(path) as f:
            if f.read() == text:
                return  # keep the mtime: nothing for syncconfig to do
    except FileNotFoundError:
        pass
    with open(path, "w") as f:
        f.write(text)


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return decode(f.read(), path)


def base(args: argparse.Namespace) -> int:
    """The starting `.config`: `make <base>`, or `base_config` completed by `olddefconfig`."""
    base_text = ""
    if args.base_config:
        try:
            base_text = _read(args.base_config)
            violations = check_requests(parse_fragment(base_text, args.base_config))
        except FragmentError as e:
            print(f"kernel_rules: {e}", file=sys.stderr)
            return 2
        if violations:
            print(f"kernel_rules: {violations[0].message()}", file=sys.stderr)
            return 2
    src = unpack_source(args.cache, args.tarball, args.sha256)
    pool = TreePool(args.cache, "conf", args.sha256, max_trees=args.max_trees)
    with pool.acquire({}) as tree:
        tree.begin_build()
        if args.base_config:
            _write_config(tree.path, base_text)
            run_make(src, tree.path, args.arch, args.jobs, ["olddefconfig"])
        else:
            run_make(src, tree.path, args.arch, args.jobs, [args.base])
        text = _read(os.path.join(tree.path, ".config"))
        tree.finish_build(text)
    _write_output(args.out, text)
    return 0


def configure(args: argparse.Namespace) -> int:
    """Base `.config` + ordered fragments -> `olddefconfig` -> check every requested value."""
    fragments: List[Tuple[str, str]] = []
    try:
        for spec in args.fragment:
            name, _, path = spec.rpartition("=")
            fragments.append((name, _read(path)))
        requests = merge_requests(fragments)
    except FragmentError as e:
        print(json.dumps({"error": str(e)}))
        return 3
    refused = check_requests(requests.values())
    if refused:
        print(json.dumps({"error": refused[0].message()}))
        return 3
    src = unpack_source(args.cache, args.tarball, args.sha256)
    pool = TreePool(args.cache, "conf", args.sha256, max_trees=args.max_trees)
    with pool.acquire({}) as tree:
        tree.begin_build()
        merged = _read(args.base_config) + "".join(
            f"\n# fragment {_one_line(n)}\n{t}\n" for n, t in fragments
        )
        _write_config(tree.path, merged)
        run_make(src, tree.path, args.arch, args.jobs, ["olddefconfig"])
        final_text = _read(os.path.join(tree.path, ".config"))
        tree.finish_build(final_text)
    final = parse_config(final_text)
    host_paths = check_final(
        final, requests, "the final .config (the base configuration or a Kconfig default)"
    )
    if host_paths:
        print(json.dumps({"host_paths": [v.message() for v in host_paths]}))
        return 3
    violations = config_check.find_violations(requests, final)
    if violations:
        from kernel_rules.domain.kconfig.tree import load_kconfig

        kconf = load_kconfig(src, args.arch, os.environ)
        config_path = os.path.join(os.getcwd(), "final.config")
        with open(config_path, "w") as f:
            f.write(final_text)
        kconf.load_config(config_path)
        report = [v.message() for v in config_check.explain(violations, kconf)]
        print(json.dumps({"violations": report}))
        return 3
    _write_output(args.out, final_text)
    return 0


def _one_line(name: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in name)


def _write_output(out: str, config_text: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, ".config"), "w") as f:
        f.write(config_text)


def build(args: argparse.Namespace) -> int:
    try:
        config_text = _read(args.config)
        values = parse_config(config_text, args.config)
    except FragmentError as e:
        print(json.dumps({"error": str(e)}))
        return 3
    host_paths = check_final(values, {}, "the configuration to build")
    if host_paths:
        print(
            json.dumps(
                {
                    "error": "the configuration names files outside the kernel tree:\n  "
                    + "\n  ".join(v.message() for v in host_paths)
                }
            )
        )
        return 3
    src = unpack_source(args.cache, args.tarball, args.sha256)
    fields = list(layout.DEFAULT_FIELDS) + [
        f for f in args.layout_field if f not in layout.DEFAULT_FIELDS
    ]
    headers = list(layout.DEFAULT_HEADERS) + [
        h for h in args.layout_header if h not in layout.DEFAULT_HEADERS
    ]
    bad = [
        h for h in headers if layout.header_problem(h) or layout.missing_header(src, args.arch, h)
    ]
    if bad:
        print(
            json.dumps(
                {
                    "error": f"field `layout_headers`: {bad[0]!r} is not a header of this kernel source",
                    "field": "layout_headers",
                }
            )
        )
        return 3
    cache_env: Dict[str, str] = {}
    if args.object_cache:
        problem = object_cache.url_problem(args.object_cache)
        ccache = shutil.which("ccache")
        if problem or ccache is None:
            print(
                json.dumps(
                    {
                        "error": "[kernel-build].object_cache: "
                        + (problem or "ccache is not on the search path: apt-get install ccache"),
                        "field": "object_cache",
                    }
                )
            )
            return 3
        cache_env = object_cache.make_env(args.cache, ccache, args.object_cache)
        log(f"object cache: ccache, remote storage {object_cache.redacted(args.object_cache)}")
    pool = TreePool(args.cache, "trees", args.sha256, max_trees=args.max_trees)
    start = time.monotonic()
    with pool.acquire(values, _build_costs(pool, values)) as tree:
        how = (
            "cold (new tree)"
            if tree.distance is None
            else f"warm ({tree.distance} symbols differ from its last build)"
        )
        if tree.estimate is not None:
            how += f", about {tree.estimate} objects to compile"
        log(f"building in tree {os.path.basename(tree.path)}, {how}")
        tree.begin_build()
        before = _tree_state(tree)
        _write_config(tree.path, config_text)
        targets = ["bzImage"] + (["modules"] if values.get("MODULES") == "y" else [])
        expected, kind, objects = _expected_compiles(tree, pool, values)
        with progress.reporting(
            args.cache,
            os.path.relpath(tree.path, os.path.realpath(args.cache)),
            sum(1 for v in values.values() if v in ("y", "m")),
            expected,
            kind,
            objects,
        ) as update:
            compiled = run_make(src, tree.path, args.arch, args.jobs, targets, update, cache_env)
            update(len(compiled), True)
        cache_stats = _object_cache_stats(args.object_cache, cache_env)
        built_config = _read(os.path.join(tree.path, ".config"))
        if parse_config(built_config) != values:
            diff = sorted(set(built_config.splitlines()) ^ set(config_text.splitlines()))
            print(
                "the configuration is not an olddefconfig fixpoint; Kbuild changed:\n  "
                + "\n  ".join(diff[:40]),
                file=sys.stderr,
            )
            return 2
        run_make(src, tree.path, args.arch, args.jobs, ["savedefconfig"])
        os.makedirs(args.out, exist_ok=True)
        for rel, name in (
            ("arch/x86/boot/bzImage", "bzImage"),
            ("vmlinux", "vmlinux"),
            ("System.map", "System.map"),
            (".config", "config"),
            ("defconfig", "defconfig"),
        ):
            shutil.copyfile(os.path.join(tree.path, rel), os.path.join(args.out, name))
        sizes = measure_sizes(src, tree.path)
        with open(os.path.join(args.out, "sizes.json"), "w") as f:
            json.dump(sizes, f, indent=1, sort_keys=True)
            f.write("\n")
        total = sum(1 for _ in object_files(tree.path))
        stats = {
            "compiled": len(compiled),
            "objects": total,
            "seconds": round(time.monotonic() - start, 1),
            "tree": os.path.basename(tree.path),
            "distance": tree.distance,
            "estimate": tree.estimate,
            "waited": tree.waited,
            "options": [{"kind": k, "tree": n, "estimate": c} for k, n, c in tree.options],
            "compiled_objects": sorted(compiled),
        }
        if cache_stats is not None:
            stats["object_cache"] = cache_stats
        if before is not None:
            bound = _lower_bound(tree.path, before, values)
            stats["lower_bound"] = len(bound)
            stats["outside_lower_bound"] = sorted(set(compiled) - bound)
        # Also kept beside the tree, for benchmarks and for curious users.
        for path in filter(None, (args.stats, os.path.join(tree.path, LAST_BUILD))):
            with open(path, "w") as f:
                json.dump(stats, f, indent=1)
        _write_object_index(tree.path)
        tree.finish_build(config_text)
        problem = _write_layout(args, src, tree.path, fields, headers)
        if problem:
            print(json.dumps({"error": problem, "field": "layout_fields"}))
            return 3
    log(f"compiled {len(compiled)} of {total} objects in {stats['seconds']} s")
    if cache_stats is not None:
        log(
            f"object cache: {cache_stats['hits']} hits, {cache_stats['misses']} misses "
            f"(compiled here), {cache_stats['uncacheable']} uncacheable calls"
        )
    return 0


def _tree_state(tree: WarmTree) -> Optional[tuple]:
    """A warm tree's dependency files, generated headers, configuration and compile commands
    before a build (None for a new or repaired tree), to compute Kbuild's lower bound of the build
    afterwards."""
    if tree.distance is None:
        return None
    return (
        kbuild_deps.object_deps(tree.path),
        kbuild_deps.generated_digests(tree.path),
        tree.last_config(),
        kbuild_deps.object_commands(tree.path),
    )


def _lower_bound(tree: str, before: tuple, values: Mapping[str, str]) -> Set[str]:
    """The objects any correct incremental build from `before` to `values` compiles."""
    deps, generated, old_config, commands = before
    return kbuild_deps.lower_bound(
        deps,
        kbuild_deps.changed_symbols(old_config, values),
        object_files(tree),
        kbuild_deps.changed_files(generated, kbuild_deps.generated_digests(tree)),
        kbuild_deps.changed_commands(commands, kbuild_deps.object_commands(tree)),
    )


def _object_cache_stats(url: str, cache_env: Mapping[str, str]) -> Optional[dict]:
    """What ccache did in this build (None without the object cache); its stats log is removed."""
    if not url:
        return None
    path = cache_env["CCACHE_STATSLOG"]
    counts = object_cache.read_stats(path)
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    return {"storage": object_cache.redacted(url), **counts}


def _write_layout(
    args: argparse.Namespace, src: str, tree: str, fields: List[str], headers: List[str]
) -> str:
    """Write `layout.json` (domain.introspect.layout) of the finished build in `tree`; return why
    a structure the BUILD file asked for is not defined by the headers, or ""."""
    structs, absent = layout.probe_layout(make_argv(src, tree, args.arch, 1, []), fields, headers)
    requested = {f.split(".", 1)[0] for f in args.layout_field}
    undefined = sorted(s for s in requested if s in absent)
    if undefined:
        return (
            f"field `layout_fields`: struct {undefined[0]} is not defined by the headers "
            f"({', '.join(headers)}): add the header that defines it to `layout_headers` "
            f"(the compiler said: {absent[undefined[0]]})"
        )
    for entry, why in absent.items():
        log(f"layout.json: {entry} is absent from this configuration ({why})")
    with open(os.path.join(tree, "include/config/kernel.release")) as f:
        release = f.read().strip()
    layout.write_manifest(
        os.path.join(args.out, "layout.json"),
        tree,
        arch=args.arch,
        release=release,
        structs=structs,
        absent=absent,
    )
    isf.main(
        [
            os.path.join(args.out, "layout.json"),
            os.path.join(args.out, "System.map"),
            os.path.join(args.out, isf.FILE_NAME),
        ]
    )
    return ""


def _expected_compiles(
    tree: WarmTree, pool: TreePool, values: Dict[str, str]
) -> Tuple[Optional[int], str, Optional[int]]:
    """What a build in `tree` will compile, as `progress` reports it: (count, "about", objects of
    the tree's last build), or (None, "", None) when there is no estimate. In a warm tree: the
    objects of its last build whose dependency files name a changed symbol (objects new to the
    image come on top; objects the new configuration drops are not compiled)."""
    if tree.distance is not None:
        before = _object_index(tree.path, busy=False)
        if before is not None:
            return _recompiles(before, tree.last_config(), values), "about", len(before)
    cold = _cold_estimate(pool)
    return (cold, "about", None) if tree.distance is None and cold is not None else (None, "", None)


def _build_costs(pool: TreePool, values: Mapping[str, str]) -> BuildCosts:
    """What building `values` would compile in each tree of `pool` (the objects of its last
    build whose dependency files name a changed symbol: the lower bound without the objects new
    to the image), and in a new tree (as many objects as the last build of the pool had)."""

    def in_tree(path: str, tree_config: Mapping[str, str], busy: bool) -> Optional[int]:
        index = _object_index(path, busy)
        return None if index is None else _recompiles(index, tree_config, values)

    return BuildCosts(in_tree, _cold_estimate(pool))


def _recompiles(
    index: Mapping[str, Set[str]], tree_config: Mapping[str, str], values: Mapping[str, str]
) -> int:
    """The objects of `index` Kbuild must recompile to go from `tree_config` to `values`."""
    changed = kbuild_deps.changed_symbols(tree_config, values)
    return len(kbuild_deps.lower_bound(index, changed, ()))


def _cold_estimate(pool: TreePool) -> Optional[int]:
    for other in pool.last_builds():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            with open(os.path.join(other, LAST_BUILD)) as f:
                return int(json.load(f)["objects"])
    return None


def _write_object_index(tree: str) -> None:
    """Record the finished build's objects and the symbols each depends on, so that the tree can
    be costed while another build runs in it (its `.cmd` files are being rewritten then)."""
    index = _scan_index(tree)
    tmp = os.path.join(tree, OBJECT_INDEX + ".tmp")
    with open(tmp, "w") as f:
        json.dump({o: sorted(syms) for o, syms in sorted(index.items())}, f, separators=(",", ":"))
    os.replace(tmp, os.path.join(tree, OBJECT_INDEX))


def _object_index(tree: str, busy: bool) -> Optional[Dict[str, Set[str]]]:
    """{object: CONFIG symbols} of the tree's last finished build: its recorded index, else (a
    free tree built before indexes were recorded) its dependency files; None when unknown."""
    with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(tree, OBJECT_INDEX)) as f:
            return {o: set(syms) for o, syms in json.load(f).items()}
    if busy or not os.path.exists(os.path.join(tree, LAST_CONFIG)):
        return None
    return _scan_index(tree)


def _scan_index(tree: str) -> Dict[str, Set[str]]:
    """{object: CONFIG symbols} from the dependency files of the objects the tree's vmlinux and
    modules are linked from (a warm tree also holds objects of earlier configurations)."""
    index = kbuild_deps.object_symbols(tree)
    if os.path.exists(os.path.join(tree, "vmlinux.a")):
        linked = linked_objects(tree)
        index = {o: syms for o, syms in index.items() if o in linked}
    return index


def _size_table(paths: Sequence[str], cwd: str) -> dict:
    """{path: [text, data, bss]} from binutils `size` (Berkeley format)."""
    out: dict = {}
    for i in range(0, len(paths), 500):
        chunk = list(paths[i : i + 500])
        text = subprocess.run(
            ["size", *chunk], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout
        for line in text.splitlines()[1:]:
            f = line.split()
            if len(f) >= 6:
                out[f[5]] = [int(f[0]), int(f[1]), int(f[2])]
    return out


def measure_sizes(src: str, tree: str) -> dict:
    """Deterministic sizes of a finished build: `vmlinux` [text, data, bss], `bzImage` bytes, and
    `objects`: {source path: text + data + bss} for every C/assembly object this build links
    (the weights of the `size` composition objective)."""
    linked = linked_objects(tree)
    leaves = sorted(
        o
        for o in object_files(tree)
        if o in linked
        and any(os.path.exists(os.path.join(src, o[:-2] + ext)) for ext in (".c", ".S"))
        and not o.startswith(("scripts/", "tools/", "arch/x86/boot/"))
    )
    table = _size_table(leaves, tree)
    objects = {}
    for o in leaves:
        if o in table:
            ext = ".c" if os.path.exists(os.path.join(src, o[:-2] + ".c")) else ".S"
            objects[o[:-2] + ext] = sum(table[o])
    return {
        "vmlinux": _size_table(["vmlinux"], tree)["vmlinux"],
        "bzImage": os.path.getsize(os.path.join(tree, "arch/x86/boot/bzImage")),
        "objects": objects,
    }


def linked_objects(tree: str) -> Set[str]:
    """The objects of this build, relative to `tree`: the members of the thin archive
    `vmlinux.a` that vmlinux is linked from, and the objects of every module of
    `modules.order` (each module's `.mod` file lists them). A warm tree also holds the objects of
    earlier configurations, which this leaves out."""
    listing = subprocess.run(
        ["ar", "t", "vmlinux.a"], cwd=tree, capture_output=True, text=True, check=True
    ).stdout
    linked = {os.path.relpath(os.path.join(tree, name), tree) for name in listing.split()}
    with contextlib.suppress(FileNotFoundError):
        with open(os.path.join(tree, "modules.order")) as f:
            modules = f.read().split()
        for ko in modules:
            with open(os.path.join(tree, ko[: -len(".ko")] + ".mod")) as f:
                linked.update(os.path.normpath(o) for o in f.read().split())
    return linked


def object_files(tree: str):
    """Relative paths of the `.o` files Kbuild tracks in `tree` (those with a `.o.cmd`)."""
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            if name.startswith(".") and name.endswith(".o.cmd"):
                yield os.path.relpath(os.path.join(dirpath, name[1:-4]), tree)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kbuild", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("base", "configure", "build"):
        s = sub.add_parser(name)
        s.add_argument("--tarball", required=True)
        s.add_argument("--sha256", required=True)
        s.add_argument("--cache", required=True, help="cache root (a Pants named cache)")
        s.add_argument("--arch", default="x86_64")
        s.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
        s.add_argument("--max-trees", type=int, default=3)
        s.add_argument("--out", required=True)
    a = sub.choices["base"]
    a.add_argument("--base", choices=CONFIG_TARGETS, default="tinyconfig")
    a.add_argument("--base-config", help="a full .config to start from instead of --base")
    c = sub.choices["configure"]
    c.add_argument("--base-config", required=True, help="the output of `base`")
    c.add_argument(
        "--fragment", action="append", default=[], help="NAME=PATH, in order (PATH holds no `=`)"
    )
    b = sub.choices["build"]
    b.add_argument("--config", required=True)
    b.add_argument("--stats")
    b.add_argument(
        "--object-cache",
        default="",
        help="a ccache remote storage URL: compile through ccache with it (off when empty)",
    )
    b.add_argument(
        "--layout-field", action="append", default=[], help="struct.member for layout.json"
    )
    b.add_argument(
        "--layout-header", action="append", default=[], help="a header the layout probe includes"
    )
    args = p.parse_args(argv)
    try:
        return {"base": base, "configure": configure, "build": build}[args.cmd](args)
    except subprocess.CalledProcessError as e:
        print(f"kernel_rules: {e.cmd} failed with exit code {e.returncode}", file=sys.stderr)
        return 1
    except layout.LayoutError as e:
        print(f"kernel_rules: layout.json: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
