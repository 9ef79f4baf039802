"""Static syscall coverage: syscalls.json -> hard requirements of composition."""

from __future__ import annotations

import pytest

from kernel_rules.domain.compose.solver import FORMULA
from kernel_rules.domain.compose.static_syscalls import StaticSyscallsError, static_requirements

DOC = {
    "format": "kernel_rules/syscalls@1",
    "static_in_app": ["read", "timerfd_create", "msgget", "uselib"],
    "static": ["read", "timerfd_create", "msgget", "uselib", "add_key"],
    "syscalls": {
        "read": {"condition": "true"},
        "timerfd_create": {
            "condition": "TIMERFD",
            "found_in": [{"binary": "/usr/bin/timer_demo", "function": "timerfd_create"}],
        },
        "msgget": {"condition": "SYSVIPC"},
        "uselib": {"condition": "false"},
        "add_key": {"condition": "KEYS"},
    },
}
TRACE = {"TIMERFD": "y", "KEYS": "y"}


def test_app_scope_requires_the_gating_options_the_trace_kernel_has():
    reqs, summary = static_requirements("//a:timer", DOC, "app", TRACE)
    assert [(r.symbol, r.value) for r in reqs] == [("TIMERFD", FORMULA)]
    assert reqs[0].source == (
        "static syscalls of //a:timer: timerfd_create (/usr/bin/timer_demo timerfd_create)"
    )
    assert summary["gated"] == {"timerfd_create": "TIMERFD"}
    assert summary["not_in_trace_kernel"] == {"msgget": "SYSVIPC"}
    assert summary["syscalls"] == 4


def test_image_scope_adds_the_other_programs():
    reqs, _ = static_requirements("//a:timer", DOC, "image", TRACE)
    assert sorted(r.symbol for r in reqs) == ["KEYS", "TIMERFD"]


def test_a_document_of_another_format_is_refused():
    with pytest.raises(StaticSyscallsError, match="//a:timer: syscalls.json has format"):
        static_requirements("//a:timer", {**DOC, "format": "other"}, "app", TRACE)


def test_an_unparsable_condition_names_the_syscall():
    bad = {**DOC, "syscalls": {**DOC["syscalls"], "msgget": {"condition": "SYSVIPC &&"}}}
    with pytest.raises(StaticSyscallsError, match="syscall msgget"):
        static_requirements("//a:timer", bad, "app", TRACE)
