"""Turn a trace (kernel addresses) into a config set: the process entry point of the mapping step.

addresses --addr2line--> file:line frames --Kbuild + C preprocessor--> presence conditions
--definite facts, checked against the trace kernel's .config--> config set (domain.map.configset).

Addresses in loadable modules are resolved against the modules' debug files (domain.map.modules),
which come from the prebuilt kernel's debug package (`--debug-deb`); module sections the guest
printed are in `trace.json`.

Run as `python3 -m kernel_rules.domain.map.mapper --tarball F --sha256 H --cache DIR --vmlinux F --config F
--addresses F --trace F --kind baseline|app --target ADDR --traced-on JSON --out DIR
[--prefix P] [--debug-deb F --debug-sha256 H --release R]`.
--addresses is the tracer's `addresses.txt` (each address with the phases it was executed in,
which the config set keeps: domain.map.configset). Writes `config-set.json` and `summary.md` to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from kernel_rules.domain.map import configset
from kernel_rules.domain.map.addr2src import DEFAULT_PREFIXES, resolve
from kernel_rules.domain.map.conditions import TRUE, Formula, Unknown
from kernel_rules.domain.map.cpp_conditions import (
    LineConditions,
    definite_facts_for,
    line_conditions,
)
from kernel_rules.domain.kconfig.fragments import parse_config
from kernel_rules.domain.map.kbuild_conditions import KbuildIndex
from kernel_rules.domain.build.warm_trees import unpack_source


class SourceConditions:
    """C preprocessor conditions of lines of files under `srctree`, each file parsed once.

    Code the compiler attributes to a preprocessor directive line (a `#define` body, after macro
    expansion elsewhere) did not necessarily come from that region: such lines get Unknown.
    """

    def __init__(self, srctree: str) -> None:
        self.srctree = srctree
        self._files: Dict[str, Optional[Tuple[LineConditions, List[str]]]] = {}

    def __call__(self, path: str, line: int) -> Formula:
        if path not in self._files:
            full = os.path.join(self.srctree, path)
            try:
                with open(full, errors="replace") as f:
                    text = f.read()
                self._files[path] = (line_conditions(text), text.splitlines())
            except OSError:
                self._files[path] = None
        entry = self._files[path]
        if entry is None:
            return Unknown(f"{path}: not in the source tree")
        conditions, lines = entry
        if _in_directive(lines, line):
            return Unknown(f"{path}:{line}: a preprocessor directive line")
        return conditions.condition(line)


def _in_directive(lines: List[str], line: int) -> bool:
    i = line - 1
    if not 0 <= i < len(lines):
        return False
    while i > 0 and lines[i - 1].rstrip().endswith("\\"):
        i -= 1
    return lines[i].lstrip().startswith("#")


def object_condition_of(index: KbuildIndex):
    def condition(path: str) -> Tuple[Formula, Optional[str]]:
        if not path.endswith((".c", ".S")):
            return TRUE, None  # a function defined in a header: its CU's condition is unknown
        result = index.condition(path)
        note = "; ".join(result.unresolved) if result.unresolved else None
        return result.formula, note

    return condition


def tristate_oracle(srctree: str, arch: str):
    """symbol -> True if tristate, from the real Kconfig (kconfiglib, ~2 s)."""
    from kernel_rules.domain.kconfig.tree import load_kconfig

    kconf = load_kconfig(srctree, arch, os.environ)
    import kconfiglib

    def is_tristate(symbol: str) -> bool:
        sym = kconf.syms.get(symbol)
        return sym is not None and sym.orig_type == kconfiglib.TRISTATE

    return is_tristate, {name for name, s in kconf.syms.items() if s.nodes}


def resolve_all(
    args, addresses: List[int], loaded: Dict[str, Dict[str, int]], prefixes: Tuple[str, ...]
):
    """Locations of vmlinux and module addresses, and per-module statistics."""
    from kernel_rules.domain.map import modules

    debug: Dict[str, str] = {}
    if loaded and args.debug_deb:
        from kernel_rules.domain.prebuilt.debian import DEBUG_ROOT, debug_tree

        root = debug_tree(args.cache, args.debug_deb, args.debug_sha256)
        debug = modules.debug_files(os.path.join(root, DEBUG_ROOT, "lib/modules", args.release))
    split = modules.split_addresses(addresses, loaded, debug)
    locations = resolve(args.vmlinux, split.vmlinux, prefixes=prefixes)
    module_locations = modules.resolve_modules(split, loaded, debug, prefixes)
    locations.update(module_locations)
    per_module: Dict[str, Dict[str, int]] = {}
    for (module, _section), addrs in sorted(split.sections.items()):
        entry = per_module.setdefault(module, {"addresses": 0, "mapped": 0})
        entry["addresses"] += len(addrs)
        entry["mapped"] += sum(
            1 for a in addrs if module_locations.get(a) and module_locations[a].frames
        )
    return (
        locations,
        set(module_locations),
        {"loaded": sorted(loaded), "traced": per_module, "without_debug_file": split.missing_debug},
    )


def read_addresses(lines: Iterable[str]) -> Dict[int, Tuple[str, ...]]:
    """address -> its phases, from the tracer's `addresses.txt` (`<hex> <phase>[,<phase>...]`)."""
    out: Dict[int, Tuple[str, ...]] = {}
    for line in lines:
        fields = line.split()
        if fields:
            out[int(fields[0], 16)] = tuple(fields[1].split(",")) if len(fields) > 1 else ()
    return out


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="mapper", description=__doc__.splitlines()[0])
    p.add_argument("--tarball", required=True)
    p.add_argument("--sha256", required=True)
    p.add_argument("--cache", required=True, help="cache root holding the unpacked sources")
    p.add_argument("--arch", default="x86_64")
    p.add_argument("--vmlinux", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--addresses", required=True)
    p.add_argument("--trace", required=True)
    p.add_argument("--kind", choices=("baseline", "app"), required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--traced-on", required=True, help="JSON of configset.TracedOn fields")
    p.add_argument(
        "--prefix",
        action="append",
        default=[],
        help="path prefix of source files in the DWARF (default /kernel/src/)",
    )
    p.add_argument("--debug-deb", help="debug package holding the modules' debug files")
    p.add_argument("--debug-sha256")
    p.add_argument("--release", help="the kernel release (the modules' directory name)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    prefixes = tuple(args.prefix) or DEFAULT_PREFIXES

    with open(args.addresses) as f:
        phases = read_addresses(f)
    addresses = sorted(phases)
    with open(args.trace) as f:
        trace = json.load(f)
    with open(args.config) as f:
        config = parse_config(f.read())
    srctree = unpack_source(args.cache, args.tarball, args.sha256)
    locations, module_addresses, module_stats = resolve_all(
        args, addresses, trace.get("module_sections") or {}, prefixes
    )
    is_tristate, defined = tristate_oracle(srctree, args.arch)

    def facts_of(formula: Formula):
        return [(s, v) for s, v in definite_facts_for(formula, is_tristate) if s in defined]

    doc = configset.build_config_set(
        kind=args.kind,
        target=args.target,
        traced_on=configset.TracedOn(**json.loads(args.traced_on)),
        locations=locations,
        addresses=len(addresses),
        line_condition=SourceConditions(srctree),
        object_condition=object_condition_of(KbuildIndex(srctree, "x86")),
        facts_of=facts_of,
        trace_config=config,
        pre_kernel_instructions=trace.get("pre_kernel_instructions", 0),
        module_stats=module_stats,
        module_addresses=module_addresses,
        address_phases=phases,
    )
    text = configset.dumps(doc)
    digest = configset.name_of(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config-set.json"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(configset.summary(doc, digest))
    print(
        f"kernel_rules: config set {digest[:16]}: {len(doc['requirements'])} requirements "
        f"from {doc['stats']['lines']} lines",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
