import os

from kernel_rules.domain.build.toolchain import probe


def test_missing_tools_are_named_with_their_debian_package(tmp_path):
    os.symlink("/usr/bin/python3", tmp_path / "python3")
    result = probe(str(tmp_path), ["python3", "gcc", "flex"])
    assert result["paths"] == {"python3": str(tmp_path / "python3")}
    assert {m["tool"]: m["package"] for m in result["missing"]} == {"gcc": "gcc", "flex": "flex"}


def test_fingerprint_changes_with_the_binary(tmp_path):
    tool = tmp_path / "make"
    tool.write_text("#!/bin/sh\necho 'GNU Make 1.0'\n")
    tool.chmod(0o755)
    first = probe(str(tmp_path), ["make"])["fingerprint"]
    assert first["make"]["version"] == "GNU Make 1.0"
    tool.write_text("#!/bin/sh\necho 'GNU Make 2.0'\n")
    assert probe(str(tmp_path), ["make"])["fingerprint"] != first
