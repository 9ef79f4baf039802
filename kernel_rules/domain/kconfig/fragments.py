"""Kconfig fragments and `.config` files: parsing with file:line provenance.

A fragment is the text format of a kernel `.config`: each non-blank line is one of

    CONFIG_FOO=y | m | n | <decimal> | 0x<hex> | "<string>"
    # CONFIG_FOO is not set
    # any other comment

Everything else is malformed and raises `FragmentError` naming `file:line`. `# CONFIG_FOO is not
set` is recorded as the value `n`, the same as `CONFIG_FOO=n`. Text is UTF-8 (`decode`); lines end
at `\n` only, as they do for Kconfig and make.

String values are data, never code: Kbuild writes them unquoted into `include/config/auto.conf`,
which make includes and shell recipes and scripts expand (`cat $(CONFIG_SYSTEM_BLACKLIST_HASH_LIST)`
in certs/Makefile, `CONFIG_LOCALVERSION` in the kernel release string). A string value holding
a make or shell metacharacter (`UNSAFE_CHARACTERS`) or a control character is an error, so a
fragment, a base config or a `force` value can never run a command on the host.

`Requests` keeps, for each symbol, the *last* request across the ordered fragments (later
fragments override earlier ones, as `merge_config.sh` and Kbuild's `%.config` targets do), together
with where it was made. Pure Python; no Pants, no kernel tree.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

_ASSIGN = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_NOT_SET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")
# hex values may lack 0x: Kconfig defaults like `default 34c` are written back that way
_VALUE = re.compile(r'^(?:[ymn]|-?[0-9]+|(?:0[xX])?[0-9a-fA-F]+|"[^"]*")$')

# What each character would do in a string value once make or a shell reads auto.conf.
UNSAFE_CHARACTERS = {
    "$": "make and the shell expand it (`$(shell ...)`, `$(...)`, `${...}`)",
    "`": "the shell runs the command it quotes",
    "\\": "make joins a line ending in it with the next one, and it escapes quotes",
    '"': "it opens or closes a shell string where Kbuild uses the value",
    "'": "it opens or closes a shell string where Kbuild uses the value",
    ";": "it separates shell commands",
    "|": "it pipes into another shell command",
    "&": "it separates shell commands",
    "<": "it is a shell redirection",
    ">": "it is a shell redirection (it creates or overwrites a host file)",
    "#": "make reads the rest of the line as a comment, so make would see another value",
}

_GLOB_CHARACTERS = "*?[]{}"  # Pants glob syntax, not allowed in fragment file names


class FragmentError(ValueError):
    """A fragment line that is not a valid `.config` line, or a string value that is not plain
    data; the message names file:line."""


@dataclass(frozen=True)
class Request:
    """One requested value: `symbol` (without `CONFIG_`) must end up as `value`."""

    symbol: str
    value: str
    origin: str  # "path/to/file.config:12"


def unsafe_string_reason(content: str) -> Optional[str]:
    """Why the text between a string value's quotes cannot be used (the first offending
    character and what make or a shell would do with it), or None when it is plain data."""
    for ch in content:
        if ch in UNSAFE_CHARACTERS:
            return f"contains {ch!r}: {UNSAFE_CHARACTERS[ch]}"
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return (
                f"contains the control character {ch!r}: it would end the line in "
                "auto.conf or the shell command"
            )
    return None


def parse_line(text: str, origin: str) -> Tuple[str, str] | None:
    """Parse one `.config` line; return (symbol, value), None for a blank/comment line.

    Raises FragmentError (prefixed with `origin`) for a malformed line, a line holding a
    newline or another control character, and a string value with a make or shell
    metacharacter.
    """
    line = text.strip()
    if not line:
        return None
    m = _NOT_SET.match(line)
    if m:
        return m.group(1), "n"
    if line.startswith("#"):
        return None
    bad = next((ch for ch in line if ord(ch) < 0x20 or ord(ch) == 0x7F), None)
    if bad is not None:
        raise FragmentError(
            f"{origin}: the line {line!r} contains the control character {bad!r}: a `.config` "
            "line is one line of text"
        )
    m = _ASSIGN.match(line)
    if not m:
        raise FragmentError(
            f"{origin}: malformed line {line!r}: expected `CONFIG_NAME=value` or "
            "`# CONFIG_NAME is not set`"
        )
    symbol, value = m.group(1), m.group(2).strip()
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        why = unsafe_string_reason(value[1:-1])
        if why:
            raise FragmentError(
                f"{origin}: CONFIG_{symbol}: the string value {value} {why}; string values are "
                "data for Kbuild, never make or shell code"
            )
    if not _VALUE.match(value):
        raise FragmentError(
            f"{origin}: malformed value {value!r} for CONFIG_{symbol}: expected y, m, n, a "
            'number, a 0x hex number, or a "quoted string"'
        )
    return symbol, value


def decode(data: bytes, name: str) -> str:
    """The text of a fragment or `.config` file; raises FragmentError naming `name:line` and the
    byte when it is not UTF-8 (e.g. Latin-1 text)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        lineno = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise FragmentError(
            f"{name}:{lineno}: byte 0x{data[e.start]:02x} (column {column}) is not UTF-8: "
            "fragments and .config files are UTF-8 text"
        ) from None


def parse_fragment(text: str, name: str) -> List[Request]:
    """All requests in one fragment, in file order. Raises FragmentError on the first bad line."""
    out: List[Request] = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
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


def fragment_file_problem(spec_path: str, name: str) -> Optional[str]:
    """Why `name` (in the `fragments` field of a BUILD file in `spec_path`) cannot name a
    fragment file, or None: each fragment is one file, named exactly, inside the repository."""
    if not name.strip():
        return "is empty: name a fragment file relative to the BUILD file"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return "holds a newline or another control character"
    if any(ch in _GLOB_CHARACTERS for ch in name) or name.startswith("!"):
        return (
            "is a glob: name each fragment file, in the order they apply (a later one "
            "overrides an earlier one)"
        )
    if "=" in name:
        return "holds `=`: fragment file names may not contain `=` (rename the file)"
    if os.path.isabs(name):
        return (
            "is an absolute path: fragments are files of the repository, relative to the BUILD file"
        )
    path = os.path.normpath(os.path.join(spec_path, name))
    if path == ".." or path.startswith("../"):
        return "is outside the repository"
    return None
