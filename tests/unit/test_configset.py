import json

from kernel_rules.domain.addr2src import Frame, Location
from kernel_rules.domain.conditions import TRUE, Not, Or, Sym, Unknown, definite_facts
from kernel_rules.domain.configset import TracedOn, build_config_set, dumps, evaluate_against, name_of
from kernel_rules.domain.mapper import SourceConditions

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
        "app", "x:app", TracedOn("s", "c", "m", "w"), locs, addresses=4,
        line_condition=lambda f, n: LINE_CONDS[(f, n)],
        object_condition=lambda f: KBUILD[f],
        facts_of=definite_facts,
        trace_config={"EPOLL": "y", "A": "y"},
    )


def test_requirements_evidence_conditions_and_contradictions():
    doc = _doc()
    assert doc["requirements"] == {
        "COMPAT": {"value": "n", "lines": 1, "evidence": ["fs/eventpoll.c:20"]},
        "EPOLL": {"value": "ym", "lines": 3,
                  "evidence": ["fs/eventpoll.c:10", "fs/eventpoll.c:20", "include/linux/x.h:5"]},
    }
    assert doc["conditions"] == [{"formula": "A || B", "lines": 1, "evidence": ["include/linux/x.h:5"]}]
    assert doc["stats"]["contradictions"] == ["SMP=y (kernel/weird.c:1)"]
    assert doc["stats"]["unmapped_addresses"] == 1 and doc["stats"]["files"] == 3


def test_text_is_canonical_and_named_by_its_hash():
    a, b = dumps(_doc()), dumps(_doc())
    assert a == b and name_of(a) == name_of(b)
    assert json.loads(a)["format"] == "kernel_rules/config-set@1"


def test_evaluate_against_lists_unmet_requirements():
    assert evaluate_against(_doc(), {"EPOLL": "m"}) == []
    assert evaluate_against(_doc(), {"EPOLL": "n", "COMPAT": "y"}) == ["COMPAT=n", "EPOLL=ym"]


def test_directive_lines_get_no_preprocessor_condition(tmp_path):
    (tmp_path / "a.c").write_text(
        "#ifdef CONFIG_X\n#define M(a) \\\n  ((a) + 1)\nint f(void) { return 1; }\n#endif\n")
    sc = SourceConditions(str(tmp_path))
    assert isinstance(sc("a.c", 3), Unknown)  # the body of a #define
    assert sc("a.c", 4) == Sym("X", "y")
    assert isinstance(sc("missing.c", 1), Unknown)
