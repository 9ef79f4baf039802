"""End to end, for real: `pants kernel-explain` and `pants kernel-diff` on the example tailored
kernels, in the session's workspace (the kernels test_tailored_e2e packaged, from its cache). Every file:line an
explanation cites is checked against the pinned tarball's Kconfig files; the diff is checked
against the two packaged `config` files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from kernel_rules.domain.compose.explain import changed_symbols
from kernel_rules.domain.kconfig.fragments import parse_config

DIST = Path("dist/examples.tailored")
DIRS = {"ipc": "ipc-unminimised", "all": "all"}  # dist/ directories of the kernels
SCRATCH = "explain-e2e-scratch"  # inside the build root, so that --against can name files in it


@pytest.fixture(scope="module")
def kernels(ws):
    """The packaged ipc and all kernels: {name: (config values, requirements.json)}."""
    done = ws.pants(
        "package", "examples/tailored:ipc-unminimised", "examples/tailored:all", timeout=3000
    )
    assert done.returncode == 0, done.output[-8000:]
    return {
        name: (
            parse_config((ws.root / DIST / DIRS[name] / "config").read_text()),
            json.loads((ws.root / DIST / DIRS[name] / "requirements.json").read_text()),
        )
        for name in ("ipc", "all")
    }


@pytest.fixture()
def scratch(ws):
    path = ws.root / SCRATCH
    path.mkdir(exist_ok=True)
    yield path
    shutil.rmtree(path)


def _app_only(config, requirements) -> str:
    """A symbol on in `config` that only the app's config set requires."""
    for symbol, values in sorted(requirements["requirements"].items()):
        sources = [s for v, srcs in values.items() if v in ("y", "m", "ym") for s in srcs]
        others = [s for v, srcs in values.items() if v not in ("y", "m", "ym") for s in srcs]
        if (
            sources
            and not others
            and all(s.startswith("app examples/tracing:ipc ") for s in sources)
            and config.get(symbol) in ("y", "m")
        ):
            return symbol
    raise AssertionError("no symbol only the app requires")


def _kconfig_line(srctree: Path, where: str) -> str:
    path, line = where.rsplit(":", 1)
    return (srctree / path).read_text(errors="replace").splitlines()[int(line) - 1].strip()


def _check_links(srctree: Path, chain: list) -> int:
    """Asserts that every file:line of `chain` is the Kconfig entry or line it names; returns
    how many were checked."""
    checked = 0
    for link in chain:
        kind = link["kind"]
        if kind in ("select", "imply", "depends on"):
            assert re.match(rf"(menu)?config {link['by']}$", _kconfig_line(srctree, link["at"]))
            checked += 1
            if link.get("line"):
                text = _kconfig_line(srctree, link["line"])
                if kind == "depends on":
                    assert text.startswith("depends on") and link["symbol"] in text, text
                else:
                    assert re.match(rf"{kind}\s+{link['symbol']}\b", text), text
                checked += 1
        elif kind in ("unmet dependency", "default"):
            assert re.match(rf"(menu)?config {link['symbol']}$", _kconfig_line(srctree, link["at"]))
            checked += 1
            if link.get("line"):
                text = _kconfig_line(srctree, link["line"])
                assert text.startswith("depends on") and link["dependency"] in text, text
                checked += 1
    return checked


def test_explain_required_selected_and_off(ws, kernels, kernel_srctree):
    config, requirements = kernels["ipc"]
    app_symbol = _app_only(config, requirements)
    selected = next(
        s
        for s in ("BPF", "HAVE_KERNEL_XZ")
        if config.get(s) == "y" and s not in requirements["requirements"]
    )
    off = "PCI_MSI"
    assert config.get(off, "n") == "n"
    symbols = (app_symbol, selected, off)
    done = ws.pants(
        "kernel-explain",
        *(f"--symbol={s}" for s in symbols),
        "--format=json",
        "examples/tailored:ipc-unminimised",
    )
    assert done.returncode == 0, done.output[-6000:]
    doc = json.loads(done.stdout)
    assert doc["format"] == "kernel_rules/explanation@1"
    by_name = {e["symbol"]: e for e in doc["symbols"]}
    for s, e in by_name.items():
        assert e["value"] == config.get(s, "n")
        for where in e["defined_at"]:
            assert re.match(rf"(menu)?config {s}$", _kconfig_line(kernel_srctree, where))

    app = by_name[app_symbol]
    assert app["verdict"] == "required"
    (req,) = app["chain"]
    assert {s["kind"] for s in req["sources"]} == {"app"}
    assert all(re.search(r"\.[chS]:\d+$", s["evidence"]) for s in req["sources"])
    assert all(s.get("phases") for s in req["sources"])

    sel = by_name[selected]
    assert sel["verdict"] == "selected"
    assert sel["chain"][0]["kind"] == "select" and sel["chain"][0]["line"]
    assert sel["chain"][-1]["kind"] == "requirement"
    assert _check_links(kernel_srctree, sel["chain"]) >= 2

    unmet = by_name[off]
    assert unmet["verdict"] == "unmet-dependency"
    assert any(link["dependency"] == "PCI" for link in unmet["chain"])
    assert _check_links(kernel_srctree, unmet["chain"]) >= 1

    text = ws.pants(
        "kernel-explain", *(f"--symbol={s}" for s in symbols), "examples/tailored:ipc-unminimised"
    )
    assert text.returncode == 0, text.output[-6000:]
    for s in symbols:
        assert f"CONFIG_{s}={config.get(s, 'n')}" in text.stdout
    link = sel["chain"][0]
    assert f"`select {selected}` at {link['line']}" in text.stdout
    assert f"config {link['by']} at {link['at']}" in text.stdout


def _diff(ws, a: str, b: str) -> dict:
    done = ws.pants("kernel-diff", "--format=json", a, b)
    assert done.returncode == 0, done.output[-6000:]
    doc = json.loads(done.stdout)
    assert (doc["a"], doc["b"]) == (a, b)
    return doc


def _check_rows(doc: dict, a: dict, b: dict) -> list:
    """Asserts that `doc` lists exactly the symbols whose values differ between `a` and `b`,
    each with both values and a reason on each side; returns the rows."""
    rows = [row for g in doc["groups"] for row in g["options"]]
    assert sorted(r["symbol"] for r in rows) == changed_symbols(a, b)
    for r in rows:
        assert (r["a"], r["b"]) == (a.get(r["symbol"], "n"), b.get(r["symbol"], "n"))
        assert r["why_a"] and r["why_b"]
    assert sum(doc["counts"].values()) == len(rows)
    return rows


def test_diff_lists_exactly_the_options_that_differ(ws, kernels):
    """ipc and all: the three other apps run only code that is on demand, so the composed
    configurations can be equal; the diff must list exactly what the config files differ in."""
    (ipc, _), (all_, _) = kernels["ipc"], kernels["all"]
    doc = _diff(ws, "examples/tailored:ipc-unminimised", "examples/tailored:all")
    _check_rows(doc, ipc, all_)
    a_sizes = json.loads((ws.root / DIST / "ipc-unminimised/sizes.json").read_text())["objects"]
    b_sizes = json.loads((ws.root / DIST / "all/sizes.json").read_text())["objects"]
    assert doc["sizes"]["a_total"] == sum(a_sizes.values())
    assert doc["sizes"]["b_total"] == sum(b_sizes.values())
    assert all(d["delta"] for d in doc["sizes"]["directories"])

    text = ws.pants("kernel-diff", "examples/tailored:ipc-unminimised", "examples/tailored:all")
    assert text.returncode == 0, text.output[-6000:]
    assert f"{doc['counts']['added']} added, {doc['counts']['removed']} removed" in text.stdout
    assert "code bytes per source directory" in text.stdout


def test_diff_with_a_kernel_image(ws, kernels):
    """A tailored kernel against a kernel_image: many options differ, with reasons on each
    side, grouped by Kconfig menu, and code sizes per directory."""
    ipc, _ = kernels["ipc"]
    done = ws.pants("package", "examples/minimal:kernel")
    assert done.returncode == 0, done.output[-6000:]
    minimal = parse_config((ws.root / "dist/examples.minimal/kernel/config").read_text())
    doc = _diff(ws, "examples/tailored:ipc-unminimised", "examples/minimal:kernel")
    rows = _check_rows(doc, ipc, minimal)
    assert rows and len(doc["groups"]) > 1
    required = [r for r in rows if r["why_a"]["verdict"] == "required"]
    assert required and all(r["a"] != "n" for r in required)
    assert doc["sizes"]["directories"]


def test_diff_against_a_config_file(ws, kernels, scratch):
    (ipc, _), (all_, _) = kernels["ipc"], kernels["all"]
    shutil.copyfile(ws.root / DIST / "all/config", scratch / "all.config")
    done = ws.pants(
        "kernel-diff",
        "--format=json",
        f"--against={SCRATCH}/all.config",
        "examples/tailored:ipc-unminimised",
    )
    assert done.returncode == 0, done.output[-6000:]
    doc = json.loads(done.stdout)
    rows = [row for g in doc["groups"] for row in g["options"]]
    assert sorted(r["symbol"] for r in rows) == changed_symbols(ipc, all_)
    assert "sizes" not in doc and "no sizes.json" in doc["sizes_note"]


def test_errors(ws, kernels, scratch):
    unknown = ws.pants(
        "kernel-explain", "--symbol=AF_UNIX_OOBB", "examples/tailored:ipc-unminimised"
    )
    assert unknown.returncode != 0
    assert "CONFIG_AF_UNIX_OOBB is not a Kconfig symbol" in unknown.output
    assert "close matches: CONFIG_AF_UNIX_OOB" in unknown.output

    nothing = ws.pants("kernel-explain", "examples/tailored:ipc-unminimised")
    assert nothing.returncode != 0 and "no symbols given" in nothing.output

    not_kernel = ws.pants("kernel-explain", "--symbol=NET", "examples/tracing:ipc")
    assert not_kernel.returncode != 0
    assert "examples/tracing:ipc is a `app_profile`, not a kernel" in not_kernel.output

    missing = ws.pants(
        "kernel-diff", "--against=no/such/file.config", "examples/tailored:ipc-unminimised"
    )
    assert missing.returncode != 0
    assert "--against=no/such/file.config: no such file" in missing.output

    (scratch / "garbage.config").write_text("CONFIG_TTY=yes please\n")
    garbage = ws.pants(
        "kernel-diff", f"--against={SCRATCH}/garbage.config", "examples/tailored:ipc-unminimised"
    )
    assert garbage.returncode != 0 and "not a kernel .config" in garbage.output

    one = ws.pants("kernel-diff", "examples/tailored:ipc-unminimised")
    assert one.returncode != 0 and "name two kernel targets" in one.output
