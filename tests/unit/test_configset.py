import json

from kernel_rules.domain.map.addr2src import Frame, Location
from kernel_rules.domain.map.conditions import TRUE, Not, Or, Sym, Unknown, definite_facts
import pytest

from kernel_rules.domain.map.configset import (
    TracedOn,
    build_config_set,
    dumps,
    evaluate_against,
    name_of,
    summary,
)
from kernel_rules.domain.map.mapper import SourceConditions

LINE_CONDS = {
    ("fs/eventpoll.c", 10): TRUE,
    ("fs/eventpoll.c", 20): Not(Sym("COMPAT", "ym")),
    ("include/linux/x.h", 5): Or((Sym("A"), Sym("B"))),
    ("kernel/weird.c", 1): Sym("SMP", "y"),  # contradicts the trace config below
}
KBUILD = {"fs/eventpoll.c": (Sym("EPOLL", "ym"), None), "kernel/weird.c": (TRUE, None)}


def _doc():
    locs = {
        1: Location(1, (Frame("f", "fs/eventpoll.c", 10),)),
        2: Location(2, (Frame("g", "include/linux/x.h", 5), Frame("h", "fs/eventpoll.c", 20))),
        3: Location(3, ()),
        4: Location(4, (Frame("w", "kernel/weird.c", 1),)),
    }
    return build_config_set(
        "app",
        "x:app",
        TracedOn("s", "c", "m", "w"),
        locs,
        addresses=4,
        line_condition=lambda f, n: LINE_CONDS[(f, n)],
        object_condition=lambda f: KBUILD[f],
        facts_of=definite_facts,
        trace_config={"EPOLL": "y", "A": "y"},
    )


def test_requirements_evidence_conditions_and_contradictions():
    doc = _doc()
    assert doc["requirements"] == {
        "COMPAT": {"value": "n", "lines": 1, "evidence": ["fs/eventpoll.c:20"], "phases": ["app"]},
        "EPOLL": {
            "value": "ym",
            "lines": 3,
            "evidence": ["fs/eventpoll.c:10", "fs/eventpoll.c:20", "include/linux/x.h:5"],
            "phases": ["app"],
        },
    }
    assert doc["conditions"] == [
        {"formula": "A || B", "lines": 1, "evidence": ["include/linux/x.h:5"], "phases": ["app"]}
    ]
    assert doc["stats"]["contradictions"] == ["SMP=y (kernel/weird.c:1)"]
    assert doc["stats"]["unmapped_addresses"] == 1 and doc["stats"]["files"] == 3


def test_text_is_canonical_and_named_by_its_hash():
    a, b = dumps(_doc()), dumps(_doc())
    assert a == b and name_of(a) == name_of(b)
    assert json.loads(a)["format"] == "kernel_rules/config-set@2"


def test_evaluate_against_lists_unmet_requirements():
    assert evaluate_against(_doc(), {"EPOLL": "m"}) == []
    assert evaluate_against(_doc(), {"EPOLL": "n", "COMPAT": "y"}) == ["COMPAT=n", "EPOLL=ym"]


def test_directive_lines_get_no_preprocessor_condition(tmp_path):
    (tmp_path / "a.c").write_text(
        "#ifdef CONFIG_X\n#define M(a) \\\n  ((a) + 1)\nint f(void) { return 1; }\n#endif\n"
    )
    sc = SourceConditions(str(tmp_path))
    assert isinstance(sc("a.c", 3), Unknown)  # the body of a #define
    assert sc("a.c", 4) == Sym("X", "y")
    assert isinstance(sc("missing.c", 1), Unknown)


def _baseline(phases):
    locs = {
        1: Location(1, (Frame("f", "fs/eventpoll.c", 10),)),
        2: Location(2, (Frame("g", "include/linux/x.h", 5), Frame("h", "fs/eventpoll.c", 20))),
        5: Location(5, (Frame("f", "fs/eventpoll.c", 10),)),
    }
    return build_config_set(
        "baseline",
        "x:b",
        TracedOn("s", "c", "m"),
        locs,
        addresses=len(locs),
        line_condition=lambda f, n: LINE_CONDS[(f, n)],
        object_condition=lambda f: KBUILD[f],
        facts_of=definite_facts,
        trace_config={"EPOLL": "y", "A": "y"},
        address_phases=phases,
    )


def test_a_requirement_has_the_phases_of_every_address_behind_it():
    doc = _baseline({1: ("init",), 2: ("init",), 5: ("boot",)})
    reqs = doc["requirements"]
    assert reqs["EPOLL"]["phases"] == ["boot", "init"]  # lines 10 (init, boot) and 20 (init)
    assert reqs["COMPAT"]["phases"] == ["init"]  # only line 20, only during init
    assert doc["conditions"][0]["phases"] == ["init"]
    assert doc["stats"]["phase_addresses"] == {"boot": 1, "init": 2}
    text = summary(doc, name_of(dumps(doc)))
    assert "| symbol | value | phases | lines | evidence |" in text
    assert "| COMPAT | n | init | 1 | fs/eventpoll.c:20 |" in text
    assert "| EPOLL | ym | boot, init | 3 |" in text
    assert "- requirements by phases: boot+init 1, init 1" in text
    assert (
        "- init-only requirements (executed during kernel initialisation, never in the "
        "user-space boot): 1" in text
    )


def test_phases_are_deterministic_and_the_same_set_gives_the_same_bytes():
    phases = {1: ("init", "boot"), 2: ("boot",), 5: ("init",)}
    again = {5: ("init",), 2: ("boot",), 1: ("boot", "init")}
    assert dumps(_baseline(phases)) == dumps(_baseline(again))


def test_a_baseline_without_phases_is_refused():
    with pytest.raises(ValueError, match="phases"):
        _baseline(None)


def test_readers_accept_format_1_and_2_and_name_the_target_of_any_other():
    from kernel_rules.domain.compose.tailor import InputError, set_requirements

    doc = json.loads(dumps(_baseline({1: ("init",), 2: ("init",), 5: ("boot",)})))
    reqs = set_requirements("x:b", doc, "s", "c")
    assert [r.symbol for r in reqs][:2] == ["COMPAT", "EPOLL"]
    assert set_requirements("x:b", {**doc, "format": "kernel_rules/config-set@1"}, "s", "c") == reqs
    with pytest.raises(
        InputError,
        match=r"^x:b: its config-set.json has format "
        r"'kernel_rules/config-set@9', not ",
    ):
        set_requirements("x:b", {**doc, "format": "kernel_rules/config-set@9"}, "s", "c")
