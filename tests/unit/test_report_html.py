"""report.json -> report.html (and report.md) on synthetic reports: the size breakdown by
subsystem, requirements by source and phase, the page's charts and tables, escaping and
determinism, and the step's command line."""

from __future__ import annotations

import json
import re

import pytest

from kernel_rules.domain.compose import report as rep
from kernel_rules.domain.compose.report import (
    OTHER,
    build_report,
    render_html,
    render_markdown,
    requirements_by_source,
    source_label,
    subsystem_sizes,
)

pytest.importorskip("jinja2")

TAILORED_OBJECTS = {
    "arch/x86/kernel/setup.c": 400,
    "arch/x86/mm/init.c": 200,
    "kernel/fork.c": 300,
    "kernel/sched/core.c": 500,
    "net/ipv4/tcp.c": 0,
    "init/main.c": 50,
}
TRACE_OBJECTS = {
    **TAILORED_OBJECTS,
    "net/ipv4/tcp.c": 900,
    "net/core/dev.c": 700,
    "drivers/net/virtio_net.c": 100,
}


def _sizes(objects):
    return {"vmlinux": [1000, 200, 100], "bzImage": 5000, "objects": objects}


REQUIREMENTS = {
    "format": "kernel_rules/requirements@1",
    "requirements": {
        "EPOLL": {"y": ["app //demo:ipc (fs/eventpoll.c:1)", "baseline //demo:base (fs/x.c:2)"]},
        "NET": {"y": ["baseline //demo:base (net/socket.c:3)"]},
        "PREEMPT": {"n": ["app //demo:ipc (kernel/sched/core.c:4)"]},
        "DEBUG_INFO": {"n": ["//demo:k field `debug_info=False`"]},
        "FUTEX": {"y": ["//demo:k field `force`[0]", "//demo:k field `force`[1]"]},
    },
    "conditions": {"!SMP": ["baseline //demo:base (kernel/smp.c:5)"]},
    "relaxed": [],
}
CONFIG_SETS = [
    {
        "kind": "baseline",
        "target": "//demo:base",
        "requirements": {"EPOLL": {"phases": ["init", "boot"]}, "NET": {"phases": ["init"]}},
        "conditions": [{"formula": "!SMP", "phases": ["boot"]}],
    },
    {
        "kind": "app",
        "target": "//demo:ipc",
        "requirements": {"EPOLL": {"phases": ["app"]}, "PREEMPT": {"phases": ["app"]}},
        "conditions": [],
    },
]


def _report(target="//demo:k", kind="built", passed=True, **kw):
    symbols = {"code": 100, "rodata": 10, "data": 5, "bss": 1}
    return build_report(
        target=target,
        baseline="//demo:base",
        apps=["//demo:ipc", "//demo:web"],
        tailored={"EPOLL": "y", "NET": "y"},
        trace={"EPOLL": "y", "NET": "y", "SOUND": "m"},
        tailored_sizes=_sizes(TAILORED_OBJECTS),
        trace_sizes=_sizes(TRACE_OBJECTS) | ({"modules_bytes": 777} if kind != "built" else {}),
        tailored_symbols=symbols,
        trace_symbols={k: 2 * v for k, v in symbols.items()},
        compose_stats={"objective": "size", "requirements": 6, "rounds": 1, "seconds": {"b": 1}},
        build_stats={"compiled": 3, "objects": 9, "seconds": 1.5},
        app_results=[
            {"name": "//demo:ipc", "passed": True, "reason": "", "boot_seconds": 1.0, "seconds": 3},
            {
                "name": "//demo:web",
                "passed": passed,
                "reason": "" if passed else "workload exited 1 <&>",
                "boot_seconds": 1.2,
                "seconds": 4,
            },
        ],
        requirements=REQUIREMENTS,
        config_sets=CONFIG_SETS,
        console_logs={"//demo:ipc": "check/0.console.log", "//demo:web": "check/1.console.log"},
        trace_kernel_kind=kind,
        **kw,
    )


def test_sizes_are_grouped_by_top_level_directory_biggest_first():
    s = subsystem_sizes(TAILORED_OBJECTS, TRACE_OBJECTS)
    assert s["totals"] == {"tailored": 1450, "trace": 3150}
    names = [(g["name"], g["tailored"], g["trace"]) for g in s["groups"]]
    assert names == [
        ("net", 0, 1600),
        ("kernel", 800, 800),
        ("arch", 600, 600),
        ("drivers", 0, 100),
        ("init", 50, 50),
    ]


def test_big_directories_are_broken_down_through_single_child_levels():
    groups = {g["name"]: g for g in subsystem_sizes(TAILORED_OBJECTS, TRACE_OBJECTS)["groups"]}
    assert groups["arch"]["breakdown_of"] == "arch/x86"  # arch/ holds only x86
    assert [c["name"] for c in groups["arch"]["children"]] == ["arch/x86/kernel", "arch/x86/mm"]
    kernel = [(c["name"], c["tailored"]) for c in groups["kernel"]["children"]]
    assert kernel == [("kernel/sched", 500), ("kernel/fork.c", 300)]  # a file counts as itself
    assert groups["init"]["children"] == []  # under BIG_SHARE of both kernels


def test_a_breakdown_shows_the_biggest_children_and_sums_the_rest(monkeypatch):
    monkeypatch.setattr(rep, "CHILDREN_SHOWN", 2)
    objects = {f"fs/d{i}/x.c": 10 * (i + 1) for i in range(5)}
    (fs,) = subsystem_sizes(objects, objects)["groups"]
    assert [(c["name"], c["trace"]) for c in fs["children"]] == [
        ("fs/d4", 50),
        ("fs/d3", 40),
        (OTHER, 60),
    ]


def test_source_labels_drop_locations_and_field_indexes():
    assert source_label("app //demo:ipc (fs/eventpoll.c:1)") == "app //demo:ipc"
    assert source_label("//demo:k field `force`[12]") == "//demo:k field `force`"
    assert source_label("tailored kernels have no loadable modules") == (
        "tailored kernels have no loadable modules"
    )


def test_requirements_are_counted_by_source_and_phase():
    q = requirements_by_source(REQUIREMENTS, CONFIG_SETS)
    assert q["phases"] == ["init", "init + boot", "boot", "app", "not recorded"]
    rows = {r["source"]: r for r in q["by_source"]}
    assert rows["baseline //demo:base"] == {
        "source": "baseline //demo:base",
        "phases": {"init": 1, "init + boot": 1, "boot": 1},
        "on": 3,
        "off": 0,
    }
    assert rows["app //demo:ipc"]["phases"] == {"app": 2}
    assert (rows["app //demo:ipc"]["on"], rows["app //demo:ipc"]["off"]) == (1, 1)
    # two `force` entries for one symbol: one source, counted once
    assert rows["//demo:k field `force`"]["phases"] == {"not recorded": 1}
    assert rows["//demo:k field `debug_info=False`"]["off"] == 1
    assert (q["symbols"], q["conditions"]) == (5, 1)
    assert [r["source"] for r in q["by_source"]] == sorted(rows)


def _tags(html, tag):
    return re.findall(rf"<{tag}\b[^>]*>", html)


def test_the_page_has_title_charts_requirements_and_app_results():
    html = render_html(_report())
    assert "<title>Tailored kernel //demo:k</title>" in html
    svgs = _tags(html, "svg")
    # top-level directories, and net/, kernel/ and arch/x86/ broken down
    assert len(svgs) == 4 and all('class="bars"' in s for s in svgs)
    bars = [t for t in _tags(html, "rect") if 'class="bar ' in t]
    assert len(bars) == 2 * (5 + 2 + 2 + 2)  # two bars a row
    widths = [float(re.search(r'width="([\d.]+)"', b).group(1)) for b in bars]
    assert max(widths) == rep.CHART_WIDTH - rep.CHART_LABEL - rep.CHART_VALUE  # net, trace
    assert 'id="app-results"' in html
    assert html.count('<a href="check/0.console.log">') == 1
    assert html.count('<a href="check/1.console.log">') == 1
    assert '<th class="num">init + boot</th>' in html
    assert "<code>baseline //demo:base</code>" in html
    assert "trace kernel" in html and "distribution kernel" not in html


def test_the_page_is_self_contained():
    html = render_html(_report())
    assert not _tags(html, "script") and not _tags(html, "link") and not _tags(html, "img")
    assert not re.search(r'(src|href)="[a-z]+:', html)
    assert "@import" not in html and "url(" not in html


def test_a_distribution_trace_kernel_is_named_so_with_its_modules():
    html = render_html(_report(kind="distribution"))
    assert "distribution kernel" in html
    assert "loadable modules (.ko bytes)" in html and ">777<" in html


def test_text_is_escaped_and_failures_are_shown():
    html = render_html(_report(target="//demo:<k&>", passed=False))
    assert "<k&>" not in html and "//demo:&lt;k&amp;&gt;" in html
    assert "workload exited 1 &lt;&amp;&gt;" in html
    assert 'class="failed"' in html and "Not every app passed." in html


def test_rendering_is_deterministic_and_needs_only_report_json():
    report = _report()
    again = json.loads(json.dumps(report, sort_keys=True))
    assert render_html(report) == render_html(again)
    assert render_markdown(report) == render_markdown(again)
    assert re.search(r"\d{4}-\d\d-\d\d", render_html(report)) is None  # no dates


def test_a_report_without_the_new_sections_still_renders():
    report = _report()
    report["subsystems"] = None
    report["requirements"] = None
    html = render_html(report)
    assert "<svg" not in html and "no requirements summary" in html


def test_the_step_writes_both_files(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(_report()))
    assert rep.main(["--report", str(tmp_path / "report.json"), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o/report.md").read_text().startswith("# Tailored kernel `//demo:k`")
    assert (tmp_path / "o/report.html").read_text().startswith("<!DOCTYPE html>")


def test_the_step_refuses_what_is_not_a_report(tmp_path, capsys):
    (tmp_path / "r.json").write_text(json.dumps({"format": "something/else"}))
    assert rep.main(["--report", str(tmp_path / "r.json"), "--out", str(tmp_path / "o")]) == 3
    assert (
        "expected 'kernel_rules/tailored-report@1'" in json.loads(capsys.readouterr().out)["error"]
    )
