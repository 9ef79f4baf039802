"""The console protocol: what the guest side writes, the host side parses back."""

from __future__ import annotations

import re
import subprocess

from kernel_rules.domain.guest import protocol
from kernel_rules.domain.guest.init import BOOT_INIT, render_app_init


def _frame_function(init: str) -> str:
    """The app /init's `kr_frame` shell function, as rendered."""
    return re.search(r"^kr_frame\(\) \{\n.*?^\}\n", init, re.M | re.S).group(0)


def test_the_app_inits_framed_report_parses_back_byte_for_byte(tmp_path):
    output = b"line one\n\x00\xffbinary and a KR_WORKLOAD_STATUS 0 1 lookalike\n" * 40
    (tmp_path / "kr-workload.log").write_bytes(output)
    script = _frame_function(render_app_init("//app:x", "run.sh")).replace("/tmp/", f"{tmp_path}/")
    script += f'kr_frame "{protocol.WORKLOAD_STATUS_LINE} 3"\n'
    console = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    report = protocol.workload_report("kernel noise\n" + console + "more noise\n")
    assert (report.status, report.output, report.problem) == (3, output, "")
    assert protocol.verdict(report, None) == "the workload exited with status 3"


def test_a_damaged_frame_is_a_problem_never_a_verdict(tmp_path):
    (tmp_path / "kr-workload.log").write_bytes(b"hello\n")
    script = _frame_function(render_app_init("//app:x", "run.sh")).replace("/tmp/", f"{tmp_path}/")
    script += f'kr_frame "{protocol.WORKLOAD_STATUS_LINE} 0"\n'
    console = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    damaged = console.replace(protocol.OUTPUT_LINE + " aGVsbG8K", protocol.OUTPUT_LINE + " aGVsbG9vCg==")
    report = protocol.workload_report(damaged)
    assert report.status is None and "damaged" in report.problem
    assert protocol.verdict(report, None) == report.problem


def test_the_boot_inits_lines_are_the_ones_check_problem_reads():
    assert protocol.INIT_MARKER in BOOT_INIT and f"{protocol.MODE_LINE} check" in BOOT_INIT
    assert protocol.CHECK_PARAM in BOOT_INIT
    good = f"{protocol.INIT_MARKER} kernel 6.1 uptime 1.0\n{protocol.MODE_LINE} check boot_script=0\n"
    assert protocol.check_problem(good) == ""
    assert "status 7" in protocol.check_problem(good.replace("boot_script=0", "boot_script=7"))
    assert "never printed" in protocol.check_problem("nothing")
    assert protocol.interactive(f"{protocol.MODE_LINE} interactive boot_script=none")


def test_every_marker_the_app_init_prints_comes_from_the_protocol():
    init = render_app_init("//app:x", "run.sh")
    printed = set(re.findall(r"\bKR_[A-Z_]+\b", init + BOOT_INIT))
    defined = {v for k, v in vars(protocol).items() if isinstance(v, str) and v.startswith("KR_")}
    assert printed <= defined, printed - defined
