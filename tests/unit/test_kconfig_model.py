"""KconfigModel against the kernel's own `conf` (Linux 6.1 scripts/kconfig), not against mocks.

- Small Kconfig files, exhaustively: every assignment of their bool/tristate symbols is given to
  `conf --olddefconfig`; the model must accept exactly the ones `conf` leaves unchanged.
- The real x86_64 tree, 100 `randconfig` results in two flavours, each of which must satisfy the
  encoding (no violated clause; a failure names the seed and the clauses):
  - restricted: KCONFIG_SEED=1..50 with KCONFIG_ALLCONFIG keeping them inside a tinyconfig-based
    universe, against the full model and the universe model; single-symbol mutations of them must
    be accepted by the model exactly when `make olddefconfig` keeps them;
  - unrestricted: KCONFIG_SEED=1..50, plain `randconfig` over the whole tree, against a model with
    no universe whose int/hex/string values are that configuration's. Those values only matter
    through the outcomes of the comparisons Kconfig makes with them (`NR_CPUS <= 4096`), so
    configurations with the same outcomes share one model (3 models for the 50).
  `make randconfig` runs `conf --randconfig Kconfig` in the O= tree, which spends about a second
  probing the compiler; the tests run that command directly, two at a time, in the universe's O=
  tree (where `conf` is built) with the environment Kbuild gives it, and check for the first seed
  of each flavour that `make randconfig` writes the same file. The whole file takes about 3
  minutes on a 2-core machine busy with other builds, 85 s of it in `conf --randconfig`.

Helpers here are shared with test_compose.py (cached per session by srctree)."""

from __future__ import annotations

import functools
import itertools
import os
import random
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import pytest

from kernel_rules.domain.kconfig.fragments import config_lines, parse_config
from kernel_rules.domain.kconfig.tree import kbuild_environment, load_kconfig
from kernel_rules.domain.kconfig.model import KconfigModel, _compare

ENV = {"PATH": "/usr/bin:/bin"}
SEEDS = range(1, 51)  # restricted to the universe
UNRESTRICTED_SEEDS = range(1, 51)  # the whole x86_64 tree
MUTATIONS = 8
UNIVERSE_OPTIONS = (
    "NET INET UNIX PACKET EPOLL EVENTFD SIGNALFD TIMERFD FUTEX PROC_FS SYSFS TMPFS SHMEM PRINTK "
    "TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD BINFMT_ELF BINFMT_SCRIPT DEVTMPFS "
    "MULTIUSER POSIX_TIMERS FILE_LOCKING INOTIFY_USER AIO PCI VIRTIO_MENU VIRTIO_PCI "
    "VIRTIO_CONSOLE MODULES BLOCK SYSVIPC"
).split()


def timed(label: str, t0: float) -> None:
    print(f"[time] {label}: {time.monotonic() - t0:.1f}s", flush=True)


def make(srctree: str, odir: str, *targets: str, **env: str) -> None:
    """`make -s -j2 -C srctree O=odir ARCH=x86_64 targets` (out of tree, quiet)."""
    cmd = ["make", "-s", "-j2", "-C", srctree, f"O={odir}", "ARCH=x86_64", *targets]
    done = subprocess.run(cmd, env={**ENV, **env}, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"


def render(values: Mapping[str, str]) -> str:
    return "".join(line + "\n" for line in config_lines(values))


@functools.lru_cache(maxsize=None)
def kconf_for(srctree: str):
    t0 = time.monotonic()
    kconf = load_kconfig(srctree, "x86_64", ENV)
    timed("load Kconfig (kconfiglib)", t0)
    return kconf


@functools.lru_cache(maxsize=None)
def universe_for(srctree: str, basetemp: str) -> Tuple[Dict[str, str], str]:
    """tinyconfig + UNIVERSE_OPTIONS + olddefconfig: (its values, the O= tree holding `conf`)."""
    t0 = time.monotonic()
    odir = os.path.join(basetemp, "kr-universe")
    os.makedirs(odir, exist_ok=True)
    make(srctree, odir, "tinyconfig")
    with open(os.path.join(odir, ".config"), "a") as f:
        f.writelines(f"CONFIG_{o}=y\n" for o in UNIVERSE_OPTIONS)
    make(srctree, odir, "olddefconfig")
    with open(os.path.join(odir, ".config")) as f:
        config = parse_config(f.read())
    missing = [o for o in UNIVERSE_OPTIONS if config.get(o) not in ("y", "m")]
    assert not missing, f"universe options that did not stick: {missing}"
    timed("universe (tinyconfig + options + olddefconfig)", t0)
    return config, odir


def on(config: Mapping[str, str]) -> set:
    return {s for s, v in config.items() if v in ("y", "m")}


@pytest.fixture(scope="module")
def kconf(kernel_srctree):
    return kconf_for(str(kernel_srctree))


@pytest.fixture(scope="module")
def universe(kernel_srctree, tmp_path_factory) -> Dict[str, str]:
    return universe_for(str(kernel_srctree), str(tmp_path_factory.getbasetemp()))[0]


@pytest.fixture(scope="module")
def conf_binary(kernel_srctree, tmp_path_factory) -> str:
    odir = universe_for(str(kernel_srctree), str(tmp_path_factory.getbasetemp()))[1]
    return os.path.join(odir, "scripts/kconfig/conf")


# ---- small Kconfig files, exhaustively ---------------------------------------------------------

TRISTATES = """
config MODULES
\tbool "Enable loadable module support"
\tmodules

config P
\tbool "P: shows B's prompt"

config A
\ttristate "A"

config B
\ttristate "B" if P
\tdepends on A
\tdefault m if !P

config I
\ttristate "I implies B"
\timply B

config S
\ttristate "S selects C"
\tselect C

config C
\ttristate
\tdepends on B
"""

CHOICES = """
config X
\tbool "X"

config N
\tint "N"
\tdefault 3

config Y
\tbool
\tdefault y if X && N > 2
\tdefault n

choice
\tprompt "pick one"
\tdefault C2

config C1
\tbool "C1"

config C2
\tbool "C2"
\tdepends on X

endchoice

choice
\tprompt "optional pick"
\toptional
\tdepends on !C2

config O1
\tbool "O1"

config O2
\tbool "O2"

endchoice

menu "hidden unless Y"
\tvisible if Y

config V
\tbool "V"
\tselect W
\tdepends on X != C1

endmenu

config W
\tbool "W" if !C2
\tdefault y
"""


def synthetic_kconf(directory: Path, text: str):
    """kconfiglib's view of a small Kconfig file (6.1's `modules` keyword as `option modules`)."""
    import kconfiglib

    path = directory / "Kconfig.kconfiglib"
    path.write_text(text.replace("\tmodules\n", "\toption modules\n"))
    return kconfiglib.Kconfig(str(path), warn=False)


def conf_olddefconfig(conf: str, directory: Path, values: Mapping[str, str]) -> Dict[str, str]:
    """What the kernel's `conf --olddefconfig` makes of `values` for directory/Kconfig."""
    (directory / ".config").write_text(render(values))
    subprocess.run(
        [conf, "--olddefconfig", "Kconfig"], cwd=directory, env=ENV, check=True, capture_output=True
    )
    return parse_config((directory / ".config").read_text())


def exhaustive(conf: str, directory: Path, text: str, values: Mapping[str, str]):
    """(number of assignments, number conf keeps, [mismatches between conf and the model])."""
    (directory / "Kconfig").write_text(text)
    model = KconfigModel.build(synthetic_kconf(directory, text), None, values)
    names = list(model.symbols)
    domains = [("n", "m", "y") if model.symbols[s] else ("n", "y") for s in names]
    kept, mismatches, total = 0, [], 0
    for combo in itertools.product(*domains):
        config = dict(zip(names, combo), **values)
        result = conf_olddefconfig(conf, directory, config)
        accepted = all(result.get(s, "n") == config[s] for s in names)
        violated = model.check(config)
        total, kept = total + 1, kept + accepted
        if accepted != (violated == []):
            mismatches.append((combo, {s: result.get(s, "n") for s in names}, violated))
    return total, kept, mismatches


@pytest.mark.parametrize(
    "text, values",
    [(TRISTATES, {}), (CHOICES, {"N": "3"})],
    ids=["tristate-select-imply", "choices-relations-menus"],
)
def test_model_accepts_exactly_the_olddefconfig_fixpoints(text, values, conf_binary, tmp_path):
    t0 = time.monotonic()
    total, kept, mismatches = exhaustive(conf_binary, tmp_path, text, values)
    timed(f"{total} assignments through conf --olddefconfig and the model", t0)
    assert mismatches == [], "\n".join(map(str, mismatches[:10]))
    assert 0 < kept < total


def test_model_basics(tmp_path):
    kconf = synthetic_kconf(tmp_path, TRISTATES)
    model = KconfigModel.build(kconf, {"MODULES": "y", "A": "m", "B": "m"})
    assert model.symbols == {
        "MODULES": False,
        "P": False,
        "A": True,
        "B": True,
        "I": True,
        "S": True,
        "C": True,
    }
    with pytest.raises(KeyError):
        model.var("P", "m")
    assert model.check({"MODULES": "y", "A": "m", "B": "m"}) == []
    assert any(
        v.startswith("C: outside the universe")
        for v in model.check({"MODULES": "y", "A": "y", "B": "y", "S": "y", "C": "y"})
    )
    assert model.check({"A": "m"}) == [  # without MODULES, m is y; and B's `default m` too
        "A: m only when tristate-typed (MODULES=y, not in a y choice) (got A=m)",
        "B: no visible prompt: equals its default/imply/select value (got B=n)",
    ]
    assignment = model.assumptions_for({"MODULES": "y", "A": "m"})
    assert model.value_of(assignment, "A") == "m" and model.value_of(assignment, "B") == "n"


# ---- the real tree ------------------------------------------------------------------------------


def allconfig_text(kconf, universe: Mapping[str, str]) -> str:
    """KCONFIG_ALLCONFIG keeping randconfig inside the universe: symbols outside it are n, the
    universe's choice picks and EXPERT/EMBEDDED (which hide many default-y options) are y."""
    import kconfiglib

    keep = on(universe)
    lines = ["CONFIG_EXPERT=y", "CONFIG_EMBEDDED=y"]
    for sym in kconf.unique_defined_syms:
        if sym.orig_type not in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            continue
        if sym.choice is not None and sym.name in keep:
            lines.append(f"CONFIG_{sym.name}=y")
        elif sym.choice is None and sym.name not in keep:
            lines.append(f"# CONFIG_{sym.name} is not set")
    return "".join(line + "\n" for line in lines)


# Tools that Kconfig probes (X86_X32_ABI: $(OBJCOPY); TOOLS_SUPPORT_RELR: $(NM), $(OBJCOPY);
# HAS_LTO_CLANG: $(NM), $(AR)) and the top-level Makefile exports to `conf` besides what
# kbuild_environment() sets.
KBUILD_TOOLS = {"OBJCOPY": "objcopy", "NM": "nm", "AR": "ar"}


@functools.lru_cache(maxsize=None)
def conf_environment(srctree: str) -> Dict[str, str]:
    """The environment `make ARCH=x86_64 randconfig` gives `conf` (what its Kconfig reads)."""
    env = kbuild_environment(srctree, "x86_64", ENV)
    for name, tool in KBUILD_TOOLS.items():
        env.setdefault(name, tool)
    return env


def read_config(text: str) -> Dict[str, str]:
    """A `.config` as `conf` writes it: {symbol: value}, `n` for `# ... is not set`. Unlike
    parse_config() this takes every value as written: `conf` writes hex values without 0x when the
    Kconfig default has none (RADIO_GEMTEK_PORT=34c), and parse_config() rejects those."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^CONFIG_(\w+)=(.*)$", line) or re.match(r"^# CONFIG_(\w+) is not set$", line)
        if m:
            out[m.group(1)] = m.group(2) if m.lastindex == 2 else "n"
    return out


def conf_randconfigs(
    srctree: str, odir: str, work: Path, seeds: Sequence[int], allconfig: Optional[Path] = None
) -> Dict[int, Path]:
    """`conf -s --randconfig Kconfig` per seed, what `make randconfig` runs (in `odir`, where `conf`
    is built), two at a time, each writing work/seed-N.config: {seed: path}."""
    env = conf_environment(srctree)

    def one(seed: int) -> Path:
        path = work / f"seed-{seed}.config"
        extra = {"KCONFIG_SEED": str(seed), "KCONFIG_CONFIG": str(path)}
        if allconfig is not None:
            extra["KCONFIG_ALLCONFIG"] = str(allconfig)
        cmd = ["scripts/kconfig/conf", "-s", "--randconfig", "Kconfig"]
        done = subprocess.run(cmd, cwd=odir, env={**env, **extra}, capture_output=True, text=True)
        assert done.returncode == 0, f"{extra} {' '.join(cmd)} failed:\n{done.stderr}"
        return path

    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        paths = dict(zip(seeds, pool.map(one, seeds)))
    timed(f"conf --randconfig, {len(paths)} seeds{' (KCONFIG_ALLCONFIG)' if allconfig else ''}", t0)
    first = seeds[0]  # the shortcut writes what `make randconfig` writes
    t0 = time.monotonic()
    via_make = work / f"seed-{first}.make.config"
    make(
        srctree,
        odir,
        "randconfig",
        KCONFIG_SEED=str(first),
        KCONFIG_CONFIG=str(via_make),
        **({"KCONFIG_ALLCONFIG": str(allconfig)} if allconfig is not None else {}),
    )
    assert via_make.read_text() == paths[first].read_text(), f"seed {first}: make differs"
    timed(f"make randconfig KCONFIG_SEED={first} (same file)", t0)
    return paths


def olddefconfig_verdict(srctree: str, odir: str, path: Path) -> str:
    """Whether `conf --olddefconfig` keeps the configuration at `path` (a failure diagnostic)."""
    copy = path.with_suffix(".olddefconfig")
    copy.write_text(path.read_text())
    subprocess.run(
        ["scripts/kconfig/conf", "-s", "--olddefconfig", "Kconfig"],
        cwd=odir,
        env={**conf_environment(srctree), "KCONFIG_CONFIG": str(copy)},
        check=True,
        capture_output=True,
    )
    before, after = read_config(path.read_text()), read_config(copy.read_text())
    changed = sorted(s for s in set(before) | set(after) if before.get(s, "n") != after.get(s, "n"))
    return f"olddefconfig changes {changed[:10]}" if changed else "olddefconfig keeps it"


@pytest.fixture(scope="module")
def randconfigs(kernel_srctree, kconf, universe, tmp_path_factory) -> List[Dict[str, str]]:
    """`randconfig` restricted to the universe, one per seed in SEEDS."""
    srctree = str(kernel_srctree)
    odir = universe_for(srctree, str(tmp_path_factory.getbasetemp()))[1]
    work = tmp_path_factory.mktemp("randconfig")
    (work / "allconfig").write_text(allconfig_text(kconf, universe))
    paths = conf_randconfigs(srctree, odir, work, SEEDS, work / "allconfig")
    return [parse_config(paths[seed].read_text()) for seed in SEEDS]


def test_every_randconfig_satisfies_the_encoding(kconf, universe, randconfigs):
    t0 = time.monotonic()
    full = KconfigModel.build(kconf, None, universe)
    timed(f"build full model ({full.pool.top} vars, {len(full.clauses)} clauses)", t0)
    t0 = time.monotonic()
    small = KconfigModel.build(kconf, universe)
    timed(f"build universe model ({small.pool.top} vars, {len(small.clauses)} clauses)", t0)
    assert full.check(universe) == [] and small.check(universe) == []
    t0 = time.monotonic()
    failures, inside = [], 0
    for seed, config in zip(SEEDS, randconfigs):
        for v in full.check(config):
            failures.append(f"restricted KCONFIG_SEED={seed}: {v}")
        within = on(config) <= on(universe)
        inside += within
        if (small.check(config) == []) != within:
            failures.append(
                f"restricted KCONFIG_SEED={seed}: universe model disagrees "
                f"(inside={within}): {small.check(config)[:5]}"
            )
    timed(f"check {len(randconfigs)} configs against both models", t0)
    assert failures == [], "\n".join(failures[:30])
    assert inside >= len(randconfigs) * 2 // 3
    assert len({tuple(sorted(on(c))) for c in randconfigs}) == len(randconfigs)
    assert any("m" in c.values() for c in randconfigs)  # tristates at m were covered too


def comparisons(kconf) -> List[tuple]:
    """The relations (`NR_CPUS <= 4096`, `INITRAMFS_SOURCE != ""`) with an int/hex/string operand
    in the expressions the model encodes: prompt conditions, defaults, dependencies, selects,
    implies. Those outcomes are all the model reads of int/hex/string values (elsewhere such a
    symbol is n whatever its value)."""
    import kconfiglib as K

    out: Dict[int, tuple] = {}

    def walk(e) -> None:
        if e.__class__ is not tuple:
            return
        if e[0] in (K.AND, K.OR, K.NOT):
            for x in e[1:]:
                walk(x)
        elif any(
            x.__class__ is K.Symbol
            and not x.is_constant
            and x.orig_type in (K.INT, K.HEX, K.STRING)
            for x in e[1:]
        ):
            out[id(e)] = e

    for item in itertools.chain(kconf.unique_defined_syms, kconf.unique_choices):
        exprs = [x for default in item.defaults for x in default]
        exprs += [node.prompt[1] for node in item.nodes if node.prompt] + [item.direct_dep]
        if item.__class__ is K.Symbol:
            exprs += [item.rev_dep, item.weak_rev_dep]
        for e in exprs:
            walk(e)
    return list(out.values())


def compared(relations: Sequence[tuple]) -> List[str]:
    """The int/hex/string symbols in `relations`."""
    import kconfiglib as K

    return sorted(
        {
            x.name
            for e in relations
            for x in e[1:]
            if not x.is_constant and x.orig_type in (K.INT, K.HEX, K.STRING)
        }
    )


def comparison_key(relations: Sequence[tuple], config: Mapping[str, str]) -> Tuple[tuple, ...]:
    """Each relation's outcome under `config`'s values, for every n/m/y of a bool/tristate operand
    (as KconfigModel.expr and _operand evaluate them): configurations with the same key give the
    same CNF, so they can share one model."""
    import kconfiglib as K

    def operand(sym) -> List[Tuple[int, str]]:
        if sym.orig_type in (K.BOOL, K.TRISTATE) or sym.name in ("n", "m", "y"):
            return [(K.TRISTATE, v) for v in "nmy"]
        if sym.is_constant or sym.orig_type not in (K.INT, K.HEX, K.STRING):
            return [(K.UNKNOWN, sym.name)]
        value = config.get(sym.name, "")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = K.unescape(value[1:-1])
        return [(sym.orig_type, value)]

    return tuple(
        tuple(
            _compare(e[0], ta, sa, tb, sb) for ta, sa in operand(e[1]) for tb, sb in operand(e[2])
        )
        for e in relations
    )


@pytest.fixture(scope="module")
def unrestricted_randconfigs(kernel_srctree, tmp_path_factory) -> Dict[int, Path]:
    """Plain `randconfig` over the whole x86_64 tree (KCONFIG_SEED only): {seed: .config path}."""
    srctree = str(kernel_srctree)
    odir = universe_for(srctree, str(tmp_path_factory.getbasetemp()))[1]
    work = tmp_path_factory.mktemp("randconfig-unrestricted")
    return conf_randconfigs(srctree, odir, work, UNRESTRICTED_SEEDS)


def test_every_unrestricted_randconfig_satisfies_the_encoding(
    kernel_srctree, kconf, unrestricted_randconfigs, tmp_path_factory
):
    """Each configuration against a model with universe=None and its own int/hex/string values."""
    relations = comparisons(kconf)
    configs = {seed: read_config(p.read_text()) for seed, p in unrestricted_randconfigs.items()}
    keys = {seed: comparison_key(relations, config) for seed, config in configs.items()}
    models: Dict[tuple, Tuple[int, KconfigModel]] = {}  # key -> (seed built from, model)
    failures: Dict[int, List[str]] = {}
    t0 = time.monotonic()
    for seed, config in configs.items():
        if keys[seed] not in models:
            models[keys[seed]] = (seed, KconfigModel.build(kconf, None, config))
        violated = models[keys[seed]][1].check(config)
        if violated:
            failures[seed] = violated
    timed(
        f"{len(configs)} unrestricted configs against {len(models)} models (one per outcome of "
        f"the {len(relations)} comparisons with int/hex/string symbols)",
        t0,
    )
    # the sharing is sound: a model is the CNF that a config sharing it gets from its own values
    # (checked for the one whose compared values differ most from those the model was built from)
    reused = max(
        (s for s in configs if models[keys[s]][0] != s),
        default=None,
        key=lambda s: sum(
            configs[s].get(n) != configs[models[keys[s]][0]].get(n) for n in compared(relations)
        ),
    )
    if reused is not None:
        t0 = time.monotonic()
        own = KconfigModel.build(kconf, None, configs[reused])
        assert own.clauses == models[keys[reused]][1].clauses, f"seed {reused}"
        timed(f"rebuild from seed {reused}'s own values: the same clauses", t0)
    lines = []
    if failures:  # the diagnostics only run on failure
        odir = universe_for(str(kernel_srctree), str(tmp_path_factory.getbasetemp()))[1]
        for i, (seed, violated) in enumerate(sorted(failures.items())):
            verdict = (
                olddefconfig_verdict(str(kernel_srctree), odir, unrestricted_randconfigs[seed])
                if i < 5
                else ""
            )
            lines += [f"unrestricted KCONFIG_SEED={seed} ({verdict or 'not rerun'}):"]
            lines += [f"  {v}" for v in violated[:10]]
    assert not failures, (
        f"{len(failures)} of {len(configs)} unrestricted randconfigs violate "
        "the encoding:\n" + "\n".join(lines[:120])
    )
    assert len({tuple(sorted(on(c))) for c in configs.values()}) == len(configs)
    assert any("m" in c.values() for c in configs.values())
    sizes = sorted(len(on(c)) for c in configs.values())
    print(f"unrestricted configs enable {sizes[0]}..{sizes[-1]} bool/tristate symbols")


def mutate(config: Mapping[str, str], model: KconfigModel, symbol: str, rng) -> Dict[str, str]:
    """A full listing of `config` with `symbol` flipped (on -> n, n -> y or m)."""
    out = {s: config.get(s, "n") for s in model.symbols}
    out.update({s: v for s, v in config.items() if s not in model.symbols})
    out[symbol] = (
        "n" if out[symbol] != "n" else rng.choice(["y", "m"] if model.symbols[symbol] else ["y"])
    )
    return out


def test_mutated_configs_are_rejected_exactly_when_olddefconfig_changes_them(
    kernel_srctree, kconf, universe, randconfigs, tmp_path
):
    """One-symbol flips of randconfig results inside the universe. Most flips cascade, so each
    is picked (from 40 random candidates, by the quick universe model) to alternate the verdict;
    `make olddefconfig` judges, and the full model must agree too."""
    full, small = KconfigModel.build(kconf, None, universe), KconfigModel.build(kconf, universe)
    names = sorted(on(universe) & set(full.symbols))
    inside = [c for c in randconfigs if on(c) <= on(universe)]
    t0 = time.monotonic()
    outcomes, failures = [], []
    for i, config in enumerate(inside[:MUTATIONS]):
        rng = random.Random(i)
        for symbol in rng.sample(names, 40):
            mutated = mutate(config, full, symbol, rng)
            violated = small.check(mutated)
            if (violated == []) == (i % 2 == 0):
                break
        (tmp_path / ".config").write_text(render(mutated))
        make(str(kernel_srctree), str(tmp_path), "olddefconfig")
        result = parse_config((tmp_path / ".config").read_text())
        kept = all(result.get(s, "n") == mutated[s] for s in full.symbols)
        outcomes.append(kept)
        if not kept == (violated == []) == (full.check(mutated) == []):
            failures.append(
                f"config {i}, {symbol}={mutated[symbol]}: olddefconfig "
                f"kept={kept}, model says {violated}"
            )
    timed(f"{len(outcomes)} mutations through make olddefconfig ({sum(outcomes)} kept)", t0)
    assert failures == [], "\n".join(failures)
    assert sum(outcomes) >= 3 and outcomes.count(False) >= 3
