"""A stand-in for qemu-system-x86_64 in tests: prints a given console and exits, without a
kernel. Its console goes where QEMU's would (stdout, or the file of `-serial file:PATH`)."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPT = '''\
import sys, time
console, stderr, dump, code = (open(p).read() for p in sys.argv[1:5])
argv = sys.argv[5:]
serial = argv[argv.index("-serial") + 1] if "-serial" in argv else "stdio"
out = open(serial[len("file:"):], "w") if serial.startswith("file:") else sys.stdout
sys.stderr.write(stderr)
sys.stderr.flush()
out.write(console)
out.flush()
if "HANG" in console:
    if sys.stdin.readline().strip() == "KR_DUMP":
        out.write("KR_DUMP\\r\\n" + dump)
        out.flush()
    time.sleep(600)
sys.exit(int(code or 0))
'''


def fake_qemu(tmp_path: Path, console: str, stderr: str = "", dump: str = "",
              code: int = 0) -> str:
    """An executable that stands in for QEMU: prints `console` (and `stderr`) and exits `code`;
    with "HANG" in the console it waits, answering a `KR_DUMP` line on stdin with `dump`."""
    files = []
    for name, text in (("console", console), ("stderr", stderr), ("dump", dump),
                       ("code", str(code))):
        (tmp_path / f"fake.{name}").write_text(text)
        files.append(str(tmp_path / f"fake.{name}"))
    (tmp_path / "fake_qemu.py").write_text(SCRIPT)
    exe = tmp_path / "qemu"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "fake_qemu.py"} '
                   f'{" ".join(files)} "$@"\n')
    exe.chmod(0o755)
    return str(exe)
