"""kernel-explain and kernel-diff logic (`domain.compose.explain`) on a small Kconfig tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_rules.domain.compose.explain import (
    Explainer,
    InputError,
    KconfigIndex,
    KernelFacts,
    change_kind,
    changed_symbols,
    diff,
    lookup,
    parse_source,
    removed_by_try,
    render_diff,
    render_explanation,
    size_diff,
    size_groups,
)

KCONFIG = """\
mainmenu "Test"

menu "Networking"

config NET
\tbool "Networking support"
\tselect BPF

config UNIX
\tbool "Unix sockets"
\tdepends on NET

config PACKET
\tbool "Packet sockets"
\tdepends on NET
\tdepends on PCI

endmenu

config BPF
\tbool

config FLOOR
\tbool
\tdefault y

config PCI
\tbool "PCI support"

config HELPER
\tbool "a helper"
\tdepends on NET

config USER
\tbool "uses the helper"
\tselect HELPER

config OUTSIDE
\tbool "not in the trace kernel"

config BUFSHIFT
\tint "buffer shift"
\tdefault 17
"""


@pytest.fixture()
def index(tmp_path: Path, monkeypatch) -> KconfigIndex:
    """The tree parsed from its directory, as `load_kconfig` does: file names are relative."""
    import kconfiglib

    (tmp_path / "Kconfig").write_text(KCONFIG)
    monkeypatch.chdir(tmp_path)
    kconf = kconfiglib.Kconfig("Kconfig", warn=False)
    return KconfigIndex(kconf, str(tmp_path))


def _line(tmp_path: Path, where: str) -> str:
    path, line = where.rsplit(":", 1)
    return (tmp_path / path).read_text().splitlines()[int(line) - 1].strip()


CONFIG = {
    "NET": "y",
    "UNIX": "y",
    "PACKET": "n",
    "BPF": "y",
    "FLOOR": "y",
    "PCI": "n",
    "USER": "y",
    "HELPER": "y",
    "OUTSIDE": "n",
    "BUFSHIFT": "17",
}
REQUIREMENTS = {
    "requirements": {
        "UNIX": {"ym": ["app examples/tracing:ipc (net/unix/af_unix.c:1017)"]},
        "USER": {"y": ["examples/tailored:ipc field `force`[0]"]},
        "PCI": {"n": ["examples/tailored:ipc field `forbid`[0]"]},
    },
    "conditions": {"UNIX || PACKET": ["baseline examples/tracing:qemu (net/socket.c:1)"]},
}
SETS = {
    "examples/tracing:ipc": {
        "requirements": {
            "UNIX": {"value": "ym", "phases": ["app"], "evidence": ["net/unix/af_unix.c:1017"]}
        }
    }
}


def _facts(**over) -> KernelFacts:
    base = dict(
        label="examples/tailored:ipc",
        config=dict(CONFIG),
        requirements=REQUIREMENTS,
        sets=SETS,
        universe={s: v for s, v in CONFIG.items() if s != "OUTSIDE"},
        build_files={"examples/tailored:ipc": "examples/tailored/BUILD"},
    )
    base.update(over)
    return KernelFacts(**base)


def test_a_requirement_names_its_app_phase_and_evidence(index):
    doc = Explainer.load(index, _facts()).explain("CONFIG_UNIX")
    assert doc["value"] == "y" and doc["verdict"] == "required"
    (link,) = doc["chain"]
    (source,) = link["sources"]
    assert source["kind"] == "app" and source["target"] == "examples/tracing:ipc"
    assert source["evidence"] == "net/unix/af_unix.c:1017" and source["phases"] == ["app"]
    assert doc["conditions"][0]["formula"] == "UNIX || PACKET"


def test_a_selected_symbol_is_walked_back_to_the_requirement(index, tmp_path):
    doc = Explainer.load(index, _facts()).explain("BPF")
    assert doc["verdict"] == "selected"
    select, dependency, root = doc["chain"]
    assert (select["kind"], select["by"]) == ("select", "NET")
    assert _line(tmp_path, select["at"]) == "config NET"
    assert _line(tmp_path, select["line"]) == "select BPF"
    # NET is on because UNIX, a requirement, depends on it
    assert (dependency["kind"], dependency["by"]) == ("depends on", "UNIX")
    assert _line(tmp_path, dependency["at"]) == "config UNIX"
    assert _line(tmp_path, dependency["line"]) == "depends on NET"
    assert root["kind"] == "requirement" and root["symbol"] == "UNIX"


def test_force_sources_name_the_build_file_and_field(index, tmp_path):
    doc = Explainer.load(index, _facts()).explain("HELPER")
    assert doc["verdict"] == "selected"
    select, root = doc["chain"]
    assert select["by"] == "USER" and _line(tmp_path, select["line"]) == "select HELPER"
    assert root["sources"][0]["where"] == "examples/tailored/BUILD: force[0]"


def test_the_floor_is_a_default_without_a_prompt(index, tmp_path):
    doc = Explainer.load(index, _facts()).explain("FLOOR")
    assert doc["verdict"] == "default"
    (link,) = doc["chain"]
    assert link["floor"] and _line(tmp_path, link["at"]) == "config FLOOR"


def test_off_symbols_forbidden_unmet_outside_and_not_needed(index, tmp_path):
    ex = Explainer.load(index, _facts())
    pci = ex.explain("PCI")
    assert pci["verdict"] == "forbidden"
    assert pci["chain"][0]["sources"][0]["where"] == "examples/tailored/BUILD: forbid[0]"
    packet = ex.explain("PACKET")
    assert packet["verdict"] == "unmet-dependency"
    (link,) = packet["chain"]
    assert link["dependency"] == "PCI" and _line(tmp_path, link["line"]) == "depends on PCI"
    assert link["because"]["verdict"] == "forbidden"
    assert ex.explain("OUTSIDE")["verdict"] == "outside-universe"
    inside = Explainer.load(index, _facts(universe=None)).explain("OUTSIDE")
    assert inside["verdict"] == "not-needed"


def test_int_values_and_force(index):
    ex = Explainer.load(index, _facts())
    assert ex.explain("BUFSHIFT")["verdict"] == "trace-kernel-value"
    forced = Explainer.load(index, _facts(universe=None, force=("CONFIG_BUFSHIFT=17",)))
    doc = forced.explain("BUFSHIFT")
    assert doc["verdict"] == "forced" and "examples/tailored/BUILD: force[0]" in doc["summary"]
    assert Explainer.load(index, _facts(universe=None)).explain("BUFSHIFT")["verdict"] == (
        "default"
    )


def test_a_minimisation_try_that_removed_it(index):
    record = {
        "removed": ["UNIX"],
        "tries": [
            {"try": 1, "new": ["UNIX", "PACKET"], "left_out": ["UNIX", "PACKET"], "passed": False},
            {"try": 2, "new": ["UNIX"], "left_out": ["UNIX"], "passed": True},
        ],
    }
    assert removed_by_try(record, "UNIX")["try"] == 2
    assert removed_by_try(record, "NET") is None
    config = dict(CONFIG, UNIX="n")
    doc = Explainer.load(
        index, _facts(config=config, requirements={"requirements": {}}, minimisation=record)
    ).explain("UNIX")
    assert doc["verdict"] == "removed-by-try" and doc["chain"][0]["try"] == 2


def test_unknown_symbols_name_close_matches(index):
    with pytest.raises(InputError, match=r"CONFIG_UNIK is not a Kconfig symbol.*CONFIG_UNIX"):
        lookup(index.kconf, "UNIK")


def test_sources_parse():
    facts = _facts()
    assert parse_source("tailored kernels have no loadable modules", facts, "MODULES") == {
        "kind": "policy",
        "text": "tailored kernels have no loadable modules",
    }
    s = parse_source("examples/tailored:ipc field `debug_info=False`", facts, "DEBUG_INFO")
    assert s["where"] == "examples/tailored/BUILD: debug_info=False"


def test_text_rendering_cites_every_link(index):
    ex = Explainer.load(index, _facts())
    doc = {"target": "t", "symbols": [ex.explain("BPF"), ex.explain("PACKET")]}
    text = render_explanation(doc)
    assert "CONFIG_BPF=y" in text and "`select BPF` at Kconfig:" in text
    assert "CONFIG_PACKET=n" in text and "depends on PCI" in text


def test_diff_groups_by_menu_with_reasons(index):
    a = _facts()
    b = _facts(label="b", config=dict(CONFIG, UNIX="n", OUTSIDE="y", BUFSHIFT="18"))
    doc = diff(index, a, b)
    assert doc["counts"] == {"added": 1, "removed": 1, "changed": 1}
    groups = {g["subsystem"]: [r["symbol"] for r in g["options"]] for g in doc["groups"]}
    assert groups["Networking"] == ["UNIX"]
    row = doc["groups"][[g["subsystem"] for g in doc["groups"]].index("Networking")]["options"][0]
    assert row["change"] == "removed" and row["why_a"]["verdict"] == "required"
    assert "UNIX: y -> n" in render_diff(doc)


def test_changed_symbols_treat_absent_as_n():
    assert changed_symbols({"A": "y", "B": "n"}, {"A": "y", "C": "m"}) == ["C"]
    assert changed_symbols({"A": "y"}, {"A": "m", "B": "n"}) == ["A"]
    assert [change_kind(*p) for p in (("n", "y"), ("y", "n"), ("y", "m"))] == [
        "added",
        "removed",
        "changed",
    ]


def test_sizes_are_grouped_by_the_top_two_directories():
    objects = {"net/unix/af_unix.c": 10, "net/unix/garbage.c": 5, "net/core/sock.c": 7}
    objects["init/main.c"] = 3
    assert size_groups(objects) == {"net/unix": 15, "net/core": 7, "init": 3}
    rows = size_diff(objects, {"net/unix/af_unix.c": 10, "init/main.c": 4})
    assert rows == [
        {"directory": "net/core", "a": 7, "b": 0, "delta": -7},
        {"directory": "net/unix", "a": 15, "b": 10, "delta": -5},
        {"directory": "init", "a": 3, "b": 4, "delta": 1},
    ]
