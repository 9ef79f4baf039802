"""Kbuild presence conditions: the CONFIG formula under which Kbuild builds a source file's object.

`KbuildIndex(srctree, arch).condition("fs/signalfd.c")` returns a `KbuildCondition`: `formula`
(a `conditions.Formula`) holds when Kbuild builds `fs/signalfd.o`, built in or as a module (TRUE:
always), and `unresolved` lists what could not be resolved (empty: fully resolved). A directory's
Makefile is parsed once, on first use; one walk of the tree (on the first query) finds Makefiles
that name objects outside their own directory. Standard library only; no Pants imports.

Modelled (Linux 6.1, Documentation/kbuild/makefiles.rst):
  * A directory's Makefile is `Kbuild` if present, else `Makefile`. Backslash continuations and `#`
    comments are handled, `define` bodies and rule recipes skipped, and `include` of an existing
    file (path relative to the tree top, after expansion) is read in place.
  * Lists `obj-y`, `obj-m`, `lib-y`, `obj-<sel>`, `lib-<sel>`: `+=`/`?=` append, `:=`/`=` replace
    the same list where the line applies (`proc-$(CONFIG_MMU) := x.o` empties `proc-y` if MMU=y).
    Selectors: y, m -> TRUE; `$(CONFIG_X)`, `$(CONFIG_X:m=y)`, `$(subst m,y,$(CONFIG_X))` -> Sym(X);
    `$(subst y,$(CONFIG_A),$(CONFIG_B))` -> B=m || (B=y && A).
  * Composite objects: for `foo.o` in an obj list, the members of `foo-objs`, `foo-y`, `foo-m` and
    `foo-<sel>` get condition(foo.o) && their own condition (one level, as Kbuild).
  * Directories: `d/` in the parent, further up (`a/b/`) or elsewhere (`../d/`); a file's condition
    conjoins its directory chain up to the top. The top is the top `Kbuild` with $(SRCARCH) = arch
    and $(ARCH_CORE), $(ARCH_LIB), $(ARCH_DRIVERS) from the `core-`, `libs-` (directories only) and
    `drivers-` lists of the top `Makefile` and the `arch/<arch>/Makefile` it includes, read as for a
    plain in-tree `make` (KBUILD_EXTMOD, config-build, mixed-build, need-sub-make, MAKECMDGOALS
    empty). Directories of other architectures are FALSE, and Makefiles that no chain from the top
    reaches contribute nothing to other directories.
  * `ifdef`/`ifndef`/`ifeq`/`ifneq`/`else [if..]`/`endif`: `ifdef CONFIG_X` -> X; `ifeq
    ($(CONFIG_X),y)` -> X=y (m alike; n -> FALSE); `ifeq ($(CONFIG_X)$(CONFIG_Y),)` -> !X && !Y; the
    quoted form `ifeq "a" "b"`; negations for ifndef/ifneq/else; literal comparisons after
    substituting variables with an unconditional value; `ifdef VAR` of a local variable: non-empty.
  * Local variables are expanded as assigned, each word with its condition (`KVM ?= ../../virt`,
    `$(KVM)/kvm_main.o`), including `$(foo-y)`/`$(foo-m)` fed by `foo-$(CONFIG_X)`; `$(addprefix)`.
  * Several rules that build the same object are joined with `||`.

Unresolved, never guessed: each becomes `Unknown(note)` in the formula and the note in `unresolved`:
  * another make expression as a selector or condition (`obj-$(BITS)`, `ifeq ($(ARCH),arm)`);
  * a list word still holding a variable: `head_$(BITS).o` matches as a pattern, conjoined with an
    Unknown; a word of only variables or other functions is dropped (named in `unresolved` when the
    lookup in its directory finds no rule);
  * "<file>: no Makefile rule builds <obj>" (e.g. a .c file `#include`d by another one), "<dir>/: no
    parent Makefile descends into this directory", headers ("headers have no Kbuild condition of
    their own") and other files.
  Noted although resolved: objects in `obj-m` (always a module) and in `lib-y` (archived in lib.a,
  linked only if referenced).
Approximations: `foo-m` members count for built-in composites too; obj-y objects of a directory
reached only through obj-m count as built; a recursive `=` variable is expanded when assigned; an
`include` whose path keeps a variable is skipped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterator, List, Optional, Pattern, Set, Tuple

from kernel_rules.domain.map.conditions import (
    FALSE,
    TRUE,
    And,
    Formula,
    Not,
    Or,
    Sym,
    Unknown,
    conj,
    disj,
    neg,
)

Tokens = List[Tuple[str, Formula]]  # expanded words, each with the condition it is present under
Entry = Tuple[str, Formula, str]  # (normalized path or pattern, condition, selector kind)

_DIRECTIVE = re.compile(r"\s*(ifdef|ifndef|ifeq|ifneq|else|endif)\b\s*(.*)$")
_LIST_LHS = re.compile(r"([A-Za-z0-9_.-]+?)-(y|m|objs|\$\(.*\))$")
_CONFIG = r"\$\(CONFIG_(\w+)\)"
_SIMPLE_REF = re.compile(r"\$\(([A-Za-z0-9_.-]+)\)")
_ADDPREFIX = re.compile(r"\$\(addprefix\s+([^,]*),(.*)\)$", re.S)


@dataclass(frozen=True)
class KbuildCondition:
    formula: Formula  # condition for the object to be built (y or m); TRUE: always
    unresolved: Tuple[str, ...]  # notes on what could not be resolved (empty when fully resolved)


def _words(text: str) -> List[str]:
    """Split on blanks outside `$(...)`."""
    out, cur, depth = [], "", 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch.isspace() and depth <= 0:
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    return out + ([cur] if cur else [])


def _split_assignment(line: str) -> Tuple[Optional[Tuple[str, str, str]], bool]:
    """((lhs, operator, rhs) or None, whether the line is a rule `target: prerequisites`)."""
    depth = 0
    for i, ch in enumerate(line):
        depth += (ch == "(") - (ch == ")")
        if depth:
            continue
        for op in ("::=", ":=", "+=", "?=", "!=", "="):
            if line.startswith(op, i):
                return (line[:i].strip(), op, line[i + len(op) :].strip()), False
        if ch == ":":
            return None, True
    return None, False


def _unknowns(f: Formula) -> Iterator[Unknown]:
    if isinstance(f, Unknown):
        yield f
    elif isinstance(f, Not):
        yield from _unknowns(f.arg)
    elif isinstance(f, (And, Or)):
        for a in f.args:
            yield from _unknowns(a)


class _Makefile:
    """One directory's Makefile (with its includes), reduced to lists of paths with conditions."""

    def __init__(
        self,
        srctree: str,
        dirpath: str,
        name: str,
        sticky: Dict[str, str],
        preset: Optional[Dict[str, Tokens]] = None,
    ) -> None:
        self.srctree, self.dir = srctree, dirpath
        self.path = os.path.join(dirpath, name) if dirpath else name
        self.sticky = dict(sticky, src=dirpath or ".", obj=dirpath or ".", srctree=".")
        self.vars: Dict[str, Tokens] = {k: [(v, TRUE)] if v else [] for k, v in self.sticky.items()}
        self.vars.update(preset or {})
        self.lists: Dict[str, List[Entry]] = {}
        self._opaque: List[Tuple[str, str]] = []  # (list base, note) for items not modelled
        self._read(self.path, 0)
        # Indexes: objects/dirs of obj-*/lib-* lists, and composite members -> composite object.
        self.objs: Dict[str, List[Tuple[Formula, str]]] = {}
        self.members: Dict[str, List[Tuple[str, Formula]]] = {}
        self.patterns: List[Tuple[Pattern[str], Formula, str]] = []
        for base in ("obj", "lib"):
            for path, cond, sel in self.lists.get(base, ()):
                kind = "lib" if base == "lib" else ("obj-m" if sel == "m" else "obj")
                if "$" in path:
                    regex = "[^/]*".join(re.escape(p) for p in _SIMPLE_REF.split(path)[::2])
                    self.patterns.append((re.compile(regex + r"\Z"), cond, kind))
                else:
                    self.objs.setdefault(path, []).append((cond, kind))
        lists = {"obj", "lib"}
        for base, entries in self.lists.items():
            comp = os.path.join(dirpath, base + ".o")
            if base not in ("obj", "lib") and any(k != "lib" for _, k in self.objs.get(comp, ())):
                lists.add(base)
                for path, cond, _sel in entries:
                    self.members.setdefault(path, []).append((comp, cond))
        self.opaque = [note for base, note in self._opaque if base in lists]

    # -- reading -------------------------------------------------------------------------------
    def _read(self, rel: str, depth: int) -> None:
        try:
            with open(os.path.join(self.srctree, rel), errors="replace") as f:
                text = f.read().replace("\r\n", "\n").replace("\\\n", " ")
        except OSError:
            return
        stack: List[List[Formula]] = []  # per open conditional: [this branch, any earlier branch]
        in_rule = in_define = False
        for raw in text.split("\n"):
            line = re.sub(r"(?<!\\)#.*", "", raw).rstrip()
            word = line.split(None, 1)[0] if line.strip() else ""
            if in_define:
                in_define = word != "endef"
                continue
            if not word or (line.startswith("\t") and in_rule):
                continue
            m = _DIRECTIVE.match(line)
            if m:
                self._directive(stack, m.group(1), m.group(2).strip(), line.strip())
                continue
            ctx = conj(*(frame[0] for frame in stack))
            if word == "define":
                in_define = True
            elif word in ("include", "-include", "sinclude") and ctx != FALSE and depth < 6:
                for tok, _c in self._expand_all(line.strip()[len(word) :]):
                    if "$" not in tok:
                        self._read(os.path.normpath(tok), depth + 1)
            elif ctx != FALSE:
                body = re.sub(r"^\s*(?:override\s+|export\s+)+", "", line)
                assignment, in_rule = _split_assignment(body)
                if assignment:
                    self._assign(*assignment, ctx)

    def _directive(self, stack: List[List[Formula]], kw: str, args: str, text: str) -> None:
        if kw == "endif":
            if stack:
                stack.pop()
        elif kw == "else" and stack:
            frame = stack[-1]
            sub = _DIRECTIVE.match(args) if args else None
            cond = self._test(sub.group(1), sub.group(2).strip(), text) if sub else TRUE
            frame[0], frame[1] = conj(neg(frame[1]), cond), disj(frame[1], cond)
        elif kw != "else":
            cond = self._test(kw, args, text)
            stack.append([cond, cond])

    def _test(self, kw: str, args: str, text: str) -> Formula:
        """Condition of `ifdef`/`ifndef`/`ifeq`/`ifneq` with arguments `args`."""
        unknown = Unknown(f"{self.path}: `{text}`")
        if kw in ("ifdef", "ifndef"):
            m = re.fullmatch(r"CONFIG_(\w+)", args)
            if m:
                f: Formula = Sym(m.group(1))
            elif args in self.vars:
                f = disj(*(c for _t, c in self.vars[args]))
            else:
                f = unknown
            return f if kw == "ifdef" else neg(f)
        m = re.fullmatch(r"\((.*)\)", args) or re.fullmatch(
            r"""(["'])(.*)\1\s+(["'])(.*)\3""", args
        )
        parts = (
            _split_comma(m.group(1))
            if m and m.lastindex == 1
            else ((m.group(2), m.group(4)) if m else None)
        )
        f = self._equal(*parts) if parts else None
        f = unknown if f is None else f
        return f if kw == "ifeq" else neg(f)

    def _equal(self, a: str, b: str) -> Optional[Formula]:
        a, b = self._substitute(a.strip()), self._substitute(b.strip())
        if "$" not in a and "$" not in b:
            return TRUE if a == b else FALSE
        if "$" in a:
            a, b = b, a
        if "$" in a or not re.fullmatch(f"(?:{_CONFIG})+", b):
            return None
        names = re.findall(_CONFIG, b)
        if a == "":
            return conj(*(neg(Sym(n)) for n in names))
        if a in ("y", "m") and len(names) == 1:
            return Sym(names[0], a)
        return FALSE if a == "n" and len(names) == 1 else None  # unset symbols are empty, never "n"

    def _substitute(self, text: str) -> str:
        """Replace `$(VAR)` whose value is unconditional (CONFIG_ references stay)."""

        def one(m: "re.Match[str]") -> str:
            toks = self.vars.get(m.group(1))
            if toks is None or any(c != TRUE for _t, c in toks):
                return m.group(0)
            return " ".join(t for t, _c in toks)

        return _SIMPLE_REF.sub(one, text)

    # -- assignments ---------------------------------------------------------------------------
    def _assign(self, lhs: str, op: str, rhs: str, ctx: Formula) -> None:
        if op == "!=" or lhs in self.sticky:
            return
        values = [(t, conj(ctx, c)) for t, c in self._expand_all(rhs)]
        m = _LIST_LHS.fullmatch(lhs)
        if m and "$" not in m.group(1):
            base, sel = m.groups()
            presence, states = self._selector(sel)
            if op in ("=", ":=", "::="):  # replaces the same list where this line applies
                self._replace(base, sel, states, ctx)
            self._add_entries(base, sel, presence, values, f"{lhs} {op}")
            if "$" in sel:  # `foo-$(CONFIG_X) += a.o` also feeds $(foo-y) and $(foo-m)
                for state, c in states.items():
                    var = self.vars.setdefault(f"{base}-{state}", [])
                    var.extend((t, conj(v, c)) for t, v in values)
        if "$" in lhs:
            return
        old = self.vars.get(lhs)
        if op == "+=" or (op == "?=" and old is None):
            self.vars[lhs] = (old or []) + values
        elif op != "?=":  # replaced only where this branch holds
            self.vars[lhs] = [(t, conj(c, neg(ctx))) for t, c in old or []] + values

    def _replace(self, base: str, sel: str, states: Dict[str, Formula], ctx: Formula) -> None:
        entries = self.lists.get(base, [])
        for i, (path, c, old) in enumerate(entries):
            hit = TRUE if old == sel else states.get(old)  # None: a different list (or unknown)
            if hit is not None:
                entries[i] = (path, conj(c, neg(conj(ctx, hit))), old)

    def _add_entries(
        self, base: str, sel: str, presence: Formula, values: Tokens, lhs_op: str
    ) -> None:
        entries = self.lists.setdefault(base, [])
        for tok, c in values:
            if "$" in tok:
                literal = _SIMPLE_REF.sub("", tok)
                if "$" in literal or literal in ("", ".o", "/"):
                    self._opaque.append((base, f"{self.path}: `{lhs_op} {tok}` is not modelled"))
                    continue
                c = conj(c, Unknown(f"{self.path}: `{tok}` names a non-CONFIG variable"))
            path = os.path.normpath(os.path.join(self.dir, tok)) + "/" * tok.endswith("/")
            entries.append((path, conj(c, presence), sel))

    def _selector(self, sel: str) -> Tuple[Formula, Dict[str, Formula]]:
        """(condition for `<base>-<sel>` to be a list at all, {"y"/"m"/..: for it to be that})."""
        if sel in ("y", "m", "objs"):
            return TRUE, {sel: TRUE}
        m = re.fullmatch(_CONFIG, sel)
        if m:
            return Sym(m.group(1)), {"y": Sym(m.group(1), "y"), "m": Sym(m.group(1), "m")}
        m = re.fullmatch(r"\$\(CONFIG_(\w+):m=y\)", sel) or re.fullmatch(
            r"\$\(subst m,\s*y,\s*" + _CONFIG + r"\)", sel
        )
        if m:
            return Sym(m.group(1)), {"y": Sym(m.group(1))}
        m = re.fullmatch(r"\$\(subst y,\s*" + _CONFIG + r",\s*" + _CONFIG + r"\)", sel)
        if m:  # the value of B with its "y" replaced by the value of A
            a, b = m.groups()
            return (
                disj(Sym(b, "m"), conj(Sym(b, "y"), Sym(a))),
                {
                    "y": conj(Sym(b, "y"), Sym(a, "y")),
                    "m": disj(Sym(b, "m"), conj(Sym(b, "y"), Sym(a, "m"))),
                },
            )
        return Unknown(f"{self.path}: `{sel}` is not a CONFIG symbol"), {}

    def _expand_all(self, text: str) -> Tokens:
        return [tc for w in _words(text) for tc in self._expand(w, frozenset())]

    def _expand(self, tok: str, seen: FrozenSet[str]) -> Tokens:
        """Expand one word; a variable is not re-expanded inside its own value (as make)."""
        m = _ADDPREFIX.match(tok)
        if m:
            prefix = self._substitute(m.group(1).strip())
            return [(prefix + t, c) for w in _words(m.group(2)) for t, c in self._expand(w, seen)]
        ref = next(
            (
                r
                for r in _SIMPLE_REF.finditer(tok)
                if r.group(1) in self.vars and r.group(1) not in seen
            ),
            None,
        )
        if ref is None:
            return [(tok, TRUE)]
        values = self.vars[ref.group(1)]
        if ref.group(0) != tok:
            values = values or [("", TRUE)]
        if len(values) > 16 and ref.group(0) != tok:
            return [(tok, TRUE)]  # a long list inside a word: left unexpanded
        head, tail, inner = tok[: ref.start()], tok[ref.end() :], seen | {ref.group(1)}
        return [
            (t, conj(c, c2)) for v, c in values for t, c2 in self._expand(head + v + tail, inner)
        ]


def _split_comma(inner: str) -> Optional[Tuple[str, str]]:
    depth = 0
    for i, ch in enumerate(inner):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            return inner[:i], inner[i + 1 :]
    return None


class KbuildIndex:
    """Presence conditions of the objects of one kernel tree (parsing is lazy and cached)."""

    def __init__(self, srctree: str, arch: str = "x86") -> None:
        self.srctree, self.arch = str(srctree), arch
        self._makefiles: Dict[str, Optional[_Makefile]] = {}
        self._dirs: Dict[str, Formula] = {}
        self._foreign: Optional[Dict[str, Set[str]]] = None
        self._unreached: Set[str] = set()
        # A plain in-tree `make` of vmlinux and modules, as the top Makefile's final pass sees it.
        self._sticky = {
            "SRCARCH": arch,
            "KBUILD_EXTMOD": "",
            "config-build": "",
            "mixed-build": "",
            "need-sub-make": "",
            "sub_make_done": "1",
            "MAKECMDGOALS": "",
        }
        if arch == "x86":  # arch/x86/Makefile: BITS := 64 unless CONFIG_X86_32 (x86_64 only here)
            self._sticky["BITS"] = "64"

    def condition(self, source_path: str) -> KbuildCondition:
        """The condition for the object compiled from `source_path` (relative to the tree)."""
        rel = os.path.normpath(source_path)
        stem, ext = os.path.splitext(rel)
        notes: List[str] = []
        if ext == ".h":
            formula: Formula = Unknown(f"{rel}: headers have no Kbuild condition of their own")
        elif ext not in (".c", ".S"):
            formula = Unknown(f"{rel}: not a C or assembly source")
        else:
            obj = stem + ".o"
            hits = []
            for where, cond, kind in self._object_hits(obj):
                hits.append(cond)
                if kind == "obj-m":
                    notes.append(f"{where}: {os.path.basename(obj)} is in obj-m (always a module)")
                elif kind == "lib":
                    notes.append(
                        f"{where}: {os.path.basename(obj)} is in lib-y "
                        "(archived in lib.a, linked only if referenced)"
                    )
            formula = (
                disj(*hits)
                if hits
                else Unknown(f"{rel}: no Makefile rule builds {os.path.basename(obj)}")
            )
            if not hits:
                mk = self._makefile(os.path.dirname(obj))
                notes.extend(mk.opaque if mk else ())
        texts = [u.text for u in _unknowns(formula)] + notes
        return KbuildCondition(formula, tuple(dict.fromkeys(texts)))

    # -- lookups -------------------------------------------------------------------------------
    def _object_hits(self, obj: str) -> List[Tuple[str, Formula, str]]:
        """(Makefile, condition, kind) of every rule that builds `obj`."""
        out = []
        own = _ancestors(os.path.dirname(obj), True)
        for where in own + sorted(self._foreign_refs().get(obj, ())):
            mk = self._makefile(where)
            if mk is None or (where not in own and not self._reached(where)):
                continue
            found = list(mk.objs.get(obj, ()))
            found += [(c, k) for rx, c, k in mk.patterns if rx.match(obj)]
            for comp, member_cond in mk.members.get(obj, ()):
                found += [(conj(c, member_cond), k) for c, k in mk.objs.get(comp, ()) if k != "lib"]
            out += [(mk.path, conj(self._dir(where), c), k) for c, k in found]
        return out

    def _dir(self, d: str) -> Formula:
        """Condition for Kbuild to descend into directory `d` ("" is the top)."""
        if d == "":
            return TRUE
        if d not in self._dirs:
            parts = d.split("/")
            if parts[0] == "arch" and len(parts) > 1 and parts[1] != self.arch:
                self._dirs[d] = FALSE  # another architecture's directory
                return FALSE
            self._dirs[d] = Unknown(f"{d}/: directory cycle")
            hits = []
            for where in _ancestors(d, False) + sorted(self._foreign_refs().get(d + "/", ())):
                mk = self._makefile(where)
                for cond, kind in mk.objs.get(d + "/", ()) if mk else ():
                    if kind != "lib" and self._reached(where):
                        hits.append(conj(self._dir(where), cond))
            if not hits:
                self._unreached.add(d)
            self._dirs[d] = (
                disj(*hits)
                if hits
                else Unknown(f"{d}/: no parent Makefile descends into this directory")
            )
        return self._dirs[d]

    def _reached(self, d: str) -> bool:
        """Whether some chain of Makefiles from the top lists directory `d`."""
        return self._dir(d) != FALSE and d not in self._unreached

    def _makefile(self, d: str) -> Optional[_Makefile]:
        if d not in self._makefiles:
            full = os.path.join(self.srctree, d)
            name = next(
                (n for n in ("Kbuild", "Makefile") if os.path.isfile(os.path.join(full, n))), None
            )
            self._makefiles[d] = (
                None
                if name is None
                else _Makefile(
                    self.srctree, d, name, self._sticky, self._top_lists() if d == "" else None
                )
            )
        return self._makefiles[d]

    def _top_lists(self) -> Dict[str, Tokens]:
        """$(ARCH_CORE), $(ARCH_LIB), $(ARCH_DRIVERS) of the top Makefile (and the arch one)."""
        top = _Makefile(self.srctree, "", "Makefile", self._sticky)
        get = lambda base: [(p, c) for p, c, _s in top.lists.get(base, ())]  # noqa: E731
        return {
            "ARCH_CORE": get("core"),
            "ARCH_DRIVERS": get("drivers"),
            "ARCH_LIB": [(p, c) for p, c in get("libs") if p.endswith("/")],
        }

    def _foreign_refs(self) -> Dict[str, Set[str]]:
        """{path: directories whose Makefile lists it although it lies outside them} (scan once)."""
        if self._foreign is None:
            self._foreign = {}
            for dirpath, dirs, files in os.walk(self.srctree):
                dirs[:] = sorted(x for x in dirs if not x.startswith("."))
                name = next((n for n in ("Kbuild", "Makefile") if n in files), None)
                if name is None:
                    continue
                with open(os.path.join(dirpath, name), errors="replace") as f:
                    text = f.read()
                if "../" not in text and not re.search(r"^\s*-?include\s", text, re.M):
                    continue
                d = os.path.relpath(dirpath, self.srctree)
                d = "" if d == "." else d
                mk = self._makefile(d)
                for path in list(mk.objs if mk else ()) + list(mk.members if mk else ()):
                    if d and not path.startswith(d + "/") and not path.startswith(".."):
                        self._foreign.setdefault(path, set()).add(d)
        return self._foreign


def _ancestors(d: str, inclusive: bool) -> List[str]:
    """`d` (if inclusive) and its parent directories up to the top "", nearest first."""
    out = [d] if inclusive else []
    while d:
        d = os.path.dirname(d)
        out.append(d)
    return out
