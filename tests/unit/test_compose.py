"""compose: MaxSAT composition on the real 6.1 tree (universe from test_kconfig_model) and on
small Kconfig files checked with the kernel's own `conf`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kernel_rules.domain.compose.solver import (
    Requirement,
    Unsatisfiable,
    close_over_dependencies,
    compose,
    enabled,
    minimal_conflict,
    render_config,
    requirements,
)
from kernel_rules.domain.kconfig.fragments import parse_config
from kernel_rules.domain.kconfig.model import KconfigModel
from tests.unit.test_kconfig_model import (
    TRISTATES,
    conf_olddefconfig,
    kconf_for,
    make,
    synthetic_kconf,
    timed,
    universe_for,
)


@pytest.fixture(scope="module")
def real(kernel_srctree, tmp_path_factory):
    """(kconf, universe config, universe model, O= tree with `conf`)."""
    kconf = kconf_for(str(kernel_srctree))
    universe, odir = universe_for(str(kernel_srctree), str(tmp_path_factory.getbasetemp()))
    t0 = time.monotonic()
    model = KconfigModel.build(kconf, universe)
    timed("build universe model", t0)
    return kconf, universe, model, odir


@pytest.fixture(scope="module")
def solved(real):
    _, _, model, _ = real
    reqs = requirements({"EPOLL": "y", "UNIX": "y"}, "baseline examples/tracing:qemu-q35")
    t0 = time.monotonic()
    values = compose(model, reqs)
    timed("compose EPOLL=y UNIX=y (RC2)", t0)
    return values


def test_solution_is_an_olddefconfig_fixpoint(real, solved, kernel_srctree, tmp_path):
    _, _, model, _ = real
    (tmp_path / ".config").write_text(render_config(solved))
    t0 = time.monotonic()
    make(str(kernel_srctree), str(tmp_path), "olddefconfig")
    timed("make olddefconfig on the solution", t0)
    result = parse_config((tmp_path / ".config").read_text())
    changed = {
        s: (v, result.get(s, "n"))
        for s, v in solved.items()
        if s in model.symbols and result.get(s, "n") != v
    }
    assert changed == {}
    assert model.check(solved) == []


def test_solution_is_small_and_meets_every_requirement(real, solved):
    _, universe, model, _ = real
    assert solved["EPOLL"] == "y" and solved["UNIX"] == "y" and solved["NET"] == "y"
    assert set(enabled(solved)) < set(enabled(universe))
    assert len(enabled(solved)) < len(enabled(universe)) * 0.8
    assert solved["CC_VERSION_TEXT"] == universe["CC_VERSION_TEXT"]  # non-bool values kept
    assert not (set(enabled(solved)) - {s for s in model.symbols if model.in_universe(s)})


def test_conflicting_requirements_name_both_sources(real):
    _, _, model, _ = real
    reqs = requirements({"NET": "n"}, "force in BUILD field") + requirements(
        {"UNIX": "y", "EPOLL": "y"}, "app examples/web (net/unix/af_unix.c:1)"
    )
    t0 = time.monotonic()
    with pytest.raises(Unsatisfiable) as info:
        compose(model, reqs)
    timed("UNSAT core + minimisation", t0)
    assert info.value.conflict == [
        ("NET", "n", "force in BUILD field"),
        ("UNIX", "y", "app examples/web (net/unix/af_unix.c:1)"),
    ]
    assert "force in BUILD field" in str(info.value) and "CONFIG_UNIX=y" in str(info.value)


def test_requirement_outside_the_universe_conflicts_alone(real):
    _, _, model, _ = real
    reqs = [Requirement("EPOLL", "y", "a"), Requirement("EXT4_FS", "ym", "b")]
    assert minimal_conflict(model, reqs) == [reqs[1]]


def test_close_over_dependencies_real_tree(real):
    kconf = real[0]
    closed = close_over_dependencies({"UNIX": "y", "PACKET": "ym", "EPOLL": "n"}, kconf)
    assert closed == {"UNIX": "y", "PACKET": "y", "NET": "y"}


# ---- small Kconfig files -------------------------------------------------------------------------

WEIGHTED = """
config A
\tbool "A"

config B
\tbool "B"

config R
\tbool "R"
\tdepends on A || B

config T
\ttristate "T"
\tdepends on R
"""


def test_weights_pick_the_cheaper_way(tmp_path):
    model = KconfigModel.build(synthetic_kconf(tmp_path, WEIGHTED), None, {})
    need = [Requirement("R", "y", "test")]
    assert enabled(compose(model, need, weights={"A": 10, "B": 1})) == ["B", "R"]
    assert enabled(compose(model, need, weights={"A": 1, "B": 10})) == ["A", "R"]
    assert enabled(compose(model, [Requirement("T", "not-y", "t")])) == []


def test_requirement_values_and_conf_agrees(tmp_path, kernel_srctree, tmp_path_factory):
    odir = universe_for(str(kernel_srctree), str(tmp_path_factory.getbasetemp()))[1]
    conf = str(Path(odir) / "scripts/kconfig/conf")
    (tmp_path / "Kconfig").write_text(TRISTATES)
    model = KconfigModel.build(synthetic_kconf(tmp_path, TRISTATES), None, {})
    cases = {
        ("S", "m"): {"MODULES": "y", "S": "m", "C": "m"},  # select ignores C's deps
        ("C", "ym"): {"S": "y", "C": "y"},  # no prompt: only a select turns C on
        ("I", "y"): {"I": "y"},  # imply alone does not turn on B's dependency A
        ("B", "y"): {"A": "y", "B": "y"},  # B's `default m`, promoted: no MODULES, no P
        ("C", "not-y"): {},
    }
    for (symbol, value), expected in cases.items():
        values = compose(model, [Requirement(symbol, value, "t")])
        assert {s: v for s, v in values.items() if v != "n"} == expected, (symbol, value)
        result = conf_olddefconfig(conf, tmp_path, values)
        assert {s: result.get(s, "n") for s in values} == values
    with pytest.raises(Unsatisfiable) as info:
        compose(
            model,
            [
                Requirement("B", "m", "x"),
                Requirement("A", "y", "y"),
                Requirement("MODULES", "n", "z"),
            ],
        )
    assert [c[2] for c in info.value.conflict] == ["x", "z"]
    with pytest.raises(ValueError):
        Requirement("A", "yes", "bad")


def test_close_over_dependencies_small(tmp_path):
    kconf = synthetic_kconf(tmp_path, WEIGHTED)
    assert close_over_dependencies({"T": "m"}, kconf) == {"T": "m", "R": "y", "A": "y"}
    assert close_over_dependencies({"T": "m", "B": "y"}, kconf) == {"T": "m", "R": "y", "B": "y"}


def test_render_config_is_sorted_and_parses_back():
    values = {"B": "n", "A": "y", "S": '"x y"', "N": "0x10", "M": "m"}
    text = render_config(values)
    assert text == (
        'CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_M=m\nCONFIG_N=0x10\nCONFIG_S="x y"\n'
    )
    assert parse_config(text) == values
