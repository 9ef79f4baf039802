"""C-preprocessor presence conditions of the lines of one Linux source file.

`line_conditions(text, in_module)` parses a file once (linear time, regular expressions do the
scanning) and `LineConditions.condition(line)` then answers, for a 1-based physical line, the
conjunction of the branch conditions of every enclosing `#if`/`#ifdef`/`#ifndef`/`#elif`/`#else`
as a `conditions.Formula` over CONFIG symbols. Standard library only; no Pants imports.

Symbols follow include/linux/kconfig.h and the generated autoconf.h (CONFIG_X=y defines
`CONFIG_X 1`; CONFIG_X=m defines `CONFIG_X_MODULE 1` and not CONFIG_X):
    #ifdef CONFIG_X, defined(CONFIG_X), defined CONFIG_X  -> Sym(X, "y")
    the same with CONFIG_X_MODULE                         -> Sym(X, "m")
    #ifndef CONFIG_X                                      -> Not(Sym(X, "y"))
    #if CONFIG_X (a bare symbol used as a truth value)    -> Sym(X, "y")  (or "m" for _MODULE)
    IS_ENABLED / IS_BUILTIN / IS_MODULE (CONFIG_X)        -> Sym(X, "ym" / "y" / "m")
    IS_REACHABLE(CONFIG_X)                                -> Sym(X, "ym") if in_module else "y"
    integer literals                                      -> FALSE if zero, else TRUE
    !, &&, || and parentheses, with C precedence          -> neg / conj / disj
`#elif e` holds when every earlier branch of its group failed and `e` holds; `#else` when every
earlier branch failed. A line's condition is the conjunction over all open groups. A directive
line (with its continuation lines) gets the condition of the region around the group it opens,
continues or closes.

Everything else becomes `Unknown(source text)`, never a guessed CONFIG meaning: macros that are not
CONFIG_ symbols (`__KERNEL__`, `MODULE`, `__x86_64__`, `defined(__ASSEMBLY__)` as
`Unknown("defined(__ASSEMBLY__)")`), comparisons, arithmetic, bitwise operators, `?:`, character
literals, other function-like macros (`__has_attribute(x)`), and a directive whose expression does
not parse (the whole expression). Unknown text is the source text with whitespace collapsed.

Approximations:
  * A name ending in `_MODULE` under `defined`/`#ifdef`/bare use is read as the module form of the
    symbol without the suffix. A Kconfig symbol genuinely named FOO_MODULE would be misread (Linux
    6.1 has none). The argument of IS_* is taken literally (those macros add `_MODULE` themselves).
  * `defined(CONFIG_X)` and bare `CONFIG_X` are exact for bool/tristate symbols; for int, hex and
    string symbols Sym(X, "y") stands for "defined" / "nonzero".
  * `#define`/`#undef` in the file (even of CONFIG_ names), `#include`, `#error`, `#pragma`, etc.
    do not change conditions; no macro is expanded.
Lenience (never raises on malformed input): an `#endif`, `#elif` or `#else` with no open group is
ignored; groups still open at end of file simply extend to the end; a branch after `#else` is
treated as one more branch. Each such event is recorded in `LineConditions.problems`.

Comments and splices are handled as C does: backslash-newline joins lines, `/* */` comments (also
spanning lines, also inside directives) and `//` comments count as whitespace, and string and
character literals are skipped so a `/*` or `#if` inside one is inert. `#` may be indented and
separated from the directive name by blanks. CRLF line ends are accepted. An unpaired quote (an
apostrophe in `#error don't`) is read as a literal running to the end of its line only.

Formulas are simplified only by `conj`/`disj`/`neg` (constants, flattening, duplicates, double
negation): a contradiction such as `#ifdef CONFIG_A` inside `#ifndef CONFIG_A` stays an And of
both, not FALSE. `#elif`/`#else` negate the earlier *written* conditions of the group, which is
equivalent to negating the earlier branch conditions and keeps long chains linear in size.

Also here: `expression_condition(expr)` (one `#if` expression), `LineConditions.regions()`, and
`definite_facts_for(f, tristate)`, which reads `Not(Sym(X, "y"))` (an `#ifndef CONFIG_X`) as X off
for bool symbols.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Callable, FrozenSet, List, Optional, Tuple

from kernel_rules.domain.map.conditions import (
    FALSE,
    TRUE,
    And,
    Fact,
    Formula,
    Not,
    Sym,
    Unknown,
    conj,
    definite_facts,
    disj,
    neg,
)

# Comments and literals. A block comment becomes one blank plus one splice per newline it held,
# so physical line numbers survive and a directive continues past a multi-line comment as in C.
_LEXICAL = re.compile(
    r"""
    /\*.*?(?:\*/|\Z)                      # block comment (unterminated: to end of file)
  | //(?:\\\n|[^\n])*                     # line comment, continued by backslash-newline
  | "(?:\\.|[^"\\\n])*"?                  # string literal (confined to its line)
  | '(?:\\.|[^'\\\n])*'?                  # character literal (an apostrophe in prose: to eol)
""",
    re.X | re.S,
)

# A conditional directive at the start of a logical line (not right after a splice).
_DIRECTIVE = re.compile(
    r"""
    (?:\A|(?<=\n)(?<!\\\n))
    [ \t]*(?:\\\n[ \t]*)*\#[ \t]*(?:\\\n[ \t]*)*
    (?P<name>ifdef|ifndef|if|elifdef|elifndef|elif|else|endif)\b
    (?P<body>(?:[^\\\n]|\\\n|\\.)*)
""",
    re.X,
)

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>\.?\d(?:[eEpP][+-]|[\w.])*)
  | (?P<chr>[LuU]?'(?:\\.|[^'\\])*')
  | (?P<str>[LuU]?"(?:\\.|[^"\\])*")
  | (?P<id>[A-Za-z_]\w*)
  | (?P<op>&&|\|\||==|!=|<=|>=|<<|>>|[-+*/%<>!~&|^?:(),])
  | (?P<bad>.)
""",
    re.X | re.S,
)

_PRECEDENCE = {
    "||": 1,
    "&&": 2,
    "|": 3,
    "^": 4,
    "&": 5,
    "==": 6,
    "!=": 6,
    "<": 7,
    ">": 7,
    "<=": 7,
    ">=": 7,
    "<<": 8,
    ">>": 8,
    "+": 9,
    "-": 9,
    "*": 10,
    "/": 10,
    "%": 10,
}
_IS_MACROS = {"IS_ENABLED": "ym", "IS_BUILTIN": "y", "IS_MODULE": "m"}


def _strip_comment(m: "re.Match[str]") -> str:
    s = m.group(0)
    if s[0] == "/":
        return (" " if s[1] == "*" else "") + "\\\n" * s.count("\n")
    return s


def _config_sym(name: str) -> Optional[Sym]:
    """CONFIG_X -> Sym(X, "y"); CONFIG_X_MODULE -> Sym(X, "m"); anything else -> None."""
    if not name.startswith("CONFIG_") or len(name) <= 7:
        return None
    base = name[7:]
    if base.endswith("_MODULE") and len(base) > 7:
        return Sym(base[:-7], "m")
    return Sym(base, "y")


def _integer(tok: str) -> Optional[int]:
    """The value of a C integer literal (with u/l suffixes), or None."""
    digits = tok.rstrip("uUlL")
    try:
        return int(digits, 8) if re.fullmatch(r"0[0-7]+", digits) else int(digits, 0)
    except ValueError:
        return None


def _defined(name: str) -> Formula:
    return _config_sym(name) or Unknown(f"defined({name})")


class _ParseError(Exception):
    pass


class _Parser:
    """Recursive descent over one `#if` expression; each method returns (formula, start, end)."""

    def __init__(self, text: str, in_module: bool) -> None:
        self.text = text
        self.in_module = in_module
        self.toks = [
            (m.lastgroup or "", m.group(), m.start(), m.end())
            for m in _TOKEN.finditer(text)
            if m.lastgroup != "ws"
        ]
        self.i = 0

    def parse(self) -> Formula:
        f, _, _ = self.conditional()
        if self.i != len(self.toks):
            raise _ParseError("trailing tokens")
        return f

    def peek(self) -> str:
        return self.toks[self.i][1] if self.i < len(self.toks) else ""

    def take(self, expected: Optional[str] = None) -> Tuple[str, str, int, int]:
        if self.i >= len(self.toks) or (expected is not None and self.toks[self.i][1] != expected):
            raise _ParseError(f"expected {expected or 'a token'}")
        self.i += 1
        return self.toks[self.i - 1]

    def unknown(self, start: int, end: int) -> Formula:
        return Unknown(" ".join(self.text[start:end].split()))

    def conditional(self) -> Tuple[Formula, int, int]:
        f, start, end = self.binary(1)
        if self.peek() != "?":
            return f, start, end
        self.take("?")
        self.conditional()
        self.take(":")
        _, _, end = self.conditional()
        return self.unknown(start, end), start, end

    def binary(self, min_prec: int) -> Tuple[Formula, int, int]:
        left, start, end = self.unary()
        while _PRECEDENCE.get(self.peek(), 0) >= min_prec:
            op = self.take()[1]
            right, _, end = self.binary(_PRECEDENCE[op] + 1)
            if op == "||":
                left = disj(left, right)
            elif op == "&&":
                left = conj(left, right)
            else:
                left = self.unknown(start, end)
        return left, start, end

    def unary(self) -> Tuple[Formula, int, int]:
        if self.peek() in ("!", "-", "+", "~"):
            _, op, start, _ = self.take()
            f, _, end = self.unary()
            return (neg(f) if op == "!" else self.unknown(start, end)), start, end
        return self.primary()

    def primary(self) -> Tuple[Formula, int, int]:
        kind, tok, start, end = self.take()
        if tok == "(":
            f, _, _ = self.conditional()
            return f, start, self.take(")")[3]
        if kind == "num":
            value = _integer(tok)
            f = self.unknown(start, end) if value is None else (TRUE if value else FALSE)
            return f, start, end
        if kind != "id":
            if kind in ("chr", "str"):
                return self.unknown(start, end), start, end
            raise _ParseError(f"unexpected {tok!r}")
        if tok == "defined":
            paren = self.peek() == "("
            if paren:
                self.take("(")
            kind, name, _, end = self.take()
            if kind != "id":
                raise _ParseError("defined needs a name")
            if paren:
                end = self.take(")")[3]
            return _defined(name), start, end
        if self.peek() == "(":
            args = self.call_args()
            end = self.toks[self.i - 1][3]
            if len(args) == 1 and _config_sym(args[0]):
                state = _IS_MACROS.get(tok)
                if tok == "IS_REACHABLE":
                    state = "ym" if self.in_module else "y"
                if state is not None:
                    return Sym(args[0][7:], state), start, end
            return self.unknown(start, end), start, end
        return (_config_sym(tok) or Unknown(tok)), start, end

    def call_args(self) -> List[str]:
        """Consume a balanced `( ... )`; return its top-level arguments as token text."""
        self.take("(")
        depth, args, current = 1, [], []  # type: int, List[str], List[str]
        while True:
            tok = self.take()[1]
            depth += {"(": 1, ")": -1}.get(tok, 0)
            if depth == 0 or (depth == 1 and tok == ","):
                args.append("".join(current))
                current = []
                if depth == 0:
                    return args
            else:
                current.append(tok)


def expression_condition(expr: str, in_module: bool = False) -> Formula:
    """The Formula of one `#if`/`#elif` expression (comments already removed)."""
    try:
        return _Parser(expr, in_module).parse()
    except (_ParseError, RecursionError):
        return Unknown(" ".join(expr.split()) or "<empty>")


class _Group:
    """One open #if group: the written conditions of its branches so far (the last is current)."""

    __slots__ = ("outer", "written", "branch", "seen_else")

    def __init__(self, outer: Formula, first: Formula) -> None:
        self.outer = outer  # the condition of the region around the group
        self.written = [first]  # e0, e1, ...: the #if and #elif expressions
        self.branch = first  # the current branch condition
        self.seen_else = False

    def current(self) -> Formula:
        return conj(self.outer, self.branch)

    def add(self, e: Formula) -> None:
        """A new branch: every earlier branch failed and `e` holds.

        "Every earlier branch failed" is the conjunction of the negated *written* conditions
        (equivalent to negating the earlier branch conditions, and linear in size).
        """
        self.branch = conj(*(neg(w) for w in self.written), e)
        self.written.append(e)


class LineConditions:
    """Presence conditions of the physical lines of one file, as sorted regions."""

    def __init__(
        self, starts: List[int], conds: List[Formula], line_count: int, problems: List[str]
    ) -> None:
        self._starts = starts  # first line of each region, ascending, starts[0] == 1
        self._conds = conds
        self.line_count = line_count  # physical lines in the file
        self.problems: Tuple[str, ...] = tuple(problems)

    def condition(self, line: int) -> Formula:
        """The condition of 1-based `line`; lines past the end get the condition at the end."""
        if line < 1:
            raise ValueError(f"line numbers start at 1, got {line}")
        return self._conds[bisect_right(self._starts, line) - 1]

    def regions(self) -> List[Tuple[int, int, Formula]]:
        """(first line, last line, condition) of the regions within the file's lines, in order."""
        ends = [s - 1 for s in self._starts[1:]] + [self.line_count]
        return [
            (s, min(e, self.line_count), f)
            for s, e, f in zip(self._starts, ends, self._conds)
            if s <= self.line_count
        ]


def line_conditions(text: str, in_module: bool = False) -> LineConditions:
    """Parse `text` (a whole C file) once; see the module docstring for the contract."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    clean = _LEXICAL.sub(_strip_comment, text)
    starts, conds, problems = [1], [TRUE], []  # type: List[int], List[Formula], List[str]
    stack: List[_Group] = []

    def region(line: int, cond: Formula) -> None:
        if starts[-1] == line:
            conds[-1] = cond
        elif conds[-1] != cond:
            starts.append(line)
            conds.append(cond)

    line, pos = 1, 0
    for m in _DIRECTIVE.finditer(clean):
        line += clean.count("\n", pos, m.start())
        pos = m.start()
        first, last = line, line + m.group(0).count("\n")
        name, body = m.group("name"), m.group("body").replace("\\\n", " ")
        outer = stack[-1].current() if stack else TRUE
        if name in ("if", "ifdef", "ifndef"):
            region(first, outer)
            stack.append(_Group(outer, _branch(name, body, in_module)))
        elif not stack:
            problems.append(f"line {first}: #{name} without #if (ignored)")
            continue
        else:
            group = stack[-1]
            region(first, group.outer)
            if name == "endif":
                stack.pop()
            else:
                if group.seen_else:
                    problems.append(f"line {first}: #{name} after #else")
                group.seen_else = group.seen_else or name == "else"
                group.add(TRUE if name == "else" else _branch(name, body, in_module))
        region(last + 1, stack[-1].current() if stack else TRUE)
    if stack:
        problems.append(f"{len(stack)} #if group(s) still open at end of file")
    line_count = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    return LineConditions(starts, conds, line_count, problems)


def _branch(name: str, body: str, in_module: bool) -> Formula:
    """The condition written by one `#if`/`#ifdef`/`#ifndef`/`#elif`/`#elifdef`/`#elifndef`."""
    if name in ("if", "elif"):
        return expression_condition(body, in_module)
    words = body.split()
    word = words[0] if words else ""
    if re.fullmatch(r"[A-Za-z_]\w*", word):
        f = _defined(word)
    else:
        f = Unknown(f"#{name} {word}".strip())
    return neg(f) if name.endswith("ndef") else f


def definite_facts_for(f: Formula, tristate: Callable[[str], bool]) -> FrozenSet[Fact]:
    """`conditions.definite_facts(f)` plus a reading of each conjunct Not(Sym(X, "y")).

    `#ifndef CONFIG_X` says X is not =y: for a bool symbol (`tristate(X)` False, it cannot be m)
    that is ("X", "n"); for a tristate symbol it is ("X", "not-y") (m or off).
    """
    facts = set(definite_facts(f))
    for p in f.args if isinstance(f, And) else (f,):
        if isinstance(p, Not) and isinstance(p.arg, Sym) and p.arg.state == "y":
            facts.add((p.arg.name, "not-y" if tristate(p.arg.name) else "n"))
    return frozenset(facts)
