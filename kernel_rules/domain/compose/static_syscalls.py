"""Static syscall coverage: the options that gate every syscall an app's binaries can make, as hard
requirements of composition, whether or not a trace saw the syscall.

A trace sees only the paths its workload took; a binary can make more syscalls on other paths
(an error handler, a flag the workload never passes). With static coverage, the tailored kernel
keeps every option whose code a syscall found by the static analysis (`domain.syscalls`,
`syscalls.json` of each app profile) needs, so such a path does not meet ENOSYS. The verified
minimisation never removes them: they are hard, not soft.

Scopes: `app`, the syscalls of the app's own `programs` and `binaries` and the libraries they
load (`static_in_app`); `image`, also those of every other program of its image, such as the
busybox that runs the workload script (`static`).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

from kernel_rules.domain.compose.solver import FORMULA, Requirement, formula_holds, parse_formula

SCOPES = ("off", "app", "image")
_LIST = {"app": "static_in_app", "image": "static"}
FORMAT = "kernel_rules/syscalls@1"


class StaticSyscallsError(ValueError):
    """A syscalls.json that cannot be used (wrong format, a condition that does not parse)."""


def static_requirements(
    label: str, doc: Mapping, scope: str, trace_config: Mapping[str, str]
) -> Tuple[List[Requirement], Dict[str, object]]:
    """The hard requirements for `scope`'s syscalls of one app (`doc` is its syscalls.json), and
    a summary: how many syscalls, which are gated, and which the trace kernel itself lacks (they
    cannot be kept: the tailored kernel may have only what the trace kernel has)."""
    if doc.get("format") != FORMAT:
        raise StaticSyscallsError(
            f"{label}: syscalls.json has format {doc.get('format')!r}, not {FORMAT}"
        )
    names: Sequence[str] = doc.get(_LIST[scope]) or ()
    reqs: List[Requirement] = []
    gated: Dict[str, str] = {}
    missing: Dict[str, str] = {}
    for name in names:
        entry = doc["syscalls"].get(name) or {}
        condition = entry.get("condition", "true")
        if condition in ("true", "false"):
            continue  # always there, or not a syscall of this architecture
        try:
            formula = parse_formula(condition)
        except ValueError as e:
            raise StaticSyscallsError(f"{label}: syscall {name}: {e}") from None
        if not formula_holds(formula, trace_config):
            missing[name] = condition
            continue
        found = (entry.get("found_in") or [{}])[0]
        where = " ".join(str(found[k]) for k in ("binary", "function") if found.get(k))
        gated[name] = condition
        reqs.append(
            Requirement(
                condition,
                FORMULA,
                f"static syscalls of {label}: {name}" + (f" ({where})" if where else ""),
            )
        )
    return reqs, {
        "app": label,
        "scope": scope,
        "syscalls": len(names),
        "gated": gated,
        "not_in_trace_kernel": missing,
    }
