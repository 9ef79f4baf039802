"""Kconfig fragments and `.config` files: parsing with file:line provenance.

A fragment is the text format of a kernel `.config`: each non-blank line is one of

    CONFIG_FOO=y | m | n | <decimal> | 0x<hex> | "<string>"
    # CONFIG_FOO is not set
    # any other comment

Everything else is malformed and raises `FragmentError` naming `file:line`. `# CONFIG_FOO is not
set` is recorded as the value `n`, the same as `CONFIG_FOO=n`.

`Requests` keeps, for each symbol, the *last* request across the ordered fragments (later
fragments override earlier ones, as `merge_config.sh` and Kbuild's `%.config` targets do), together
with where it was made. Pure Python; no Pants, no kernel tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Tuple

_ASSIGN = re.compile(r'^CONFIG_([A-Za-z0-9_]+)=(.*)$')
_NOT_SET = re.compile(r'^# CONFIG_([A-Za-z0-9_]+) is not set$')
# hex values may lack 0x: Kconfig defaults like `default 34c` are written back that way
_VALUE = re.compile(r'^(?:[ymn]|-?[0-9]+|(?:0[xX])?[0-9a-fA-F]+|"(?:[^"\\]|\\.)*")$')


class FragmentError(ValueError):
    """A fragment line that is not a valid `.config` line; the message names file:line."""


@dataclass(frozen=True)
class Request:
    """One requested value: `symbol` (without `CONFIG_`) must end up as `value`."""

    symbol: str
    value: str
    origin: str  # "path/to/file.config:12"


def parse_line(text: str, origin: str) -> Tuple[str, str] | None:
    """Parse one `.config` line; return (symbol, value), None for a blank/comment line.

    Raises FragmentError (prefixed with `origin`) for a malformed line.
    """
    line = text.strip()
    if not line:
        return None
    m = _NOT_SET.match(line)
    if m:
        return m.group(1), "n"
    if line.startswith("#"):
        return None
    m = _ASSIGN.match(line)
    if not m:
        raise FragmentError(
            f"{origin}: malformed line {line!r}: expected `CONFIG_NAME=value` or "
            "`# CONFIG_NAME is not set`"
        )
    symbol, value = m.group(1), m.group(2).strip()
    if not _VALUE.match(value):
        raise FragmentError(
            f"{origin}: malformed value {value!r} for CONFIG_{symbol}: expected y, m, n, a "
            'number, a 0x hex number, or a "quoted string"'
        )
    return symbol, value


def parse_fragment(text: str, name: str) -> List[Request]:
    """All requests in one fragment, in file order. Raises FragmentError on the first bad line."""
    out: List[Request] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        parsed = parse_line(raw, f"{name}:{lineno}")
        if parsed:
            out.append(Request(parsed[0], parsed[1], f"{name}:{lineno}"))
    return out


def merge_requests(fragments: Iterable[Tuple[str, str]]) -> Dict[str, Request]:
    """Merge ordered (name, text) fragments; the last request for a symbol wins."""
    merged: Dict[str, Request] = {}
    for name, text in fragments:
        for req in parse_fragment(text, name):
            merged.pop(req.symbol, None)
            merged[req.symbol] = req
    return merged


def parse_config(text: str, name: str = ".config") -> Dict[str, str]:
    """Values of a full `.config`: {symbol: value}; symbols set to `n` map to "n"."""
    return {r.symbol: r.value for r in parse_fragment(text, name)}


def config_lines(values: Mapping[str, str]) -> List[str]:
    """Canonical, sorted `.config` lines for `values` (used for distances and digests)."""
    return [
        f"# CONFIG_{sym} is not set" if val == "n" else f"CONFIG_{sym}={val}"
        for sym, val in sorted(values.items())
    ]


def config_distance(a: Mapping[str, str], b: Mapping[str, str]) -> int:
    """Number of symbols whose value differs between two configs (absent counts as `n`)."""
    return sum(1 for s in set(a) | set(b) if a.get(s, "n") != b.get(s, "n"))
