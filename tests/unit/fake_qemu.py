"""A stand-in for qemu-system-x86_64 in tests: prints a given console and exits, without a
kernel. Its console goes where QEMU's would (stdout, or the file of `-serial file:PATH`).

With `-gdb unix:PATH,...` and `-monitor unix:PATH,...` (a tracer's run) it starts stopped and
serves a minimal gdbstub and HMP monitor: the first `c` stops at the breakpoint set (when
`stops`), the next runs the guest; the monitor's commands are appended to `fake.hmp`. With
`-D PATH` it writes `log` there, and in `-d` order: the part before `AT_BREAKPOINT` when the
guest stops, the rest when it runs on."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPT = """\
import os, socket, sys, threading, time
console, stderr, dump, code, log, stops = (open(p).read() for p in sys.argv[1:7])
argv = sys.argv[7:]
serial = argv[argv.index("-serial") + 1] if "-serial" in argv else "stdio"
out = open(serial[len("file:"):], "w") if serial.startswith("file:") else sys.stdout
hmp_log = os.path.join(os.path.dirname(sys.argv[1]), "fake.hmp")
before, _, after = log.partition("AT_BREAKPOINT\\n")


def socket_of(option):
    if option not in argv:
        return None
    path = argv[argv.index(option) + 1][len("unix:"):].split(",")[0]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    return s


def write_log(text):
    if "-D" in argv:
        with open(argv[argv.index("-D") + 1], "a") as f:
            f.write(text)


def monitor(s):
    while True:
        conn, _ = s.accept()
        conn.sendall(b"QEMU 7.2.0 monitor\\r\\n(qemu) ")
        line = conn.makefile().readline()
        with open(hmp_log, "a") as f:
            f.write(line)
        conn.sendall(b"\\r\\n(qemu) ")
        conn.close()


def packets(conn):
    buf = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            return
        buf += chunk
        while b"#" in buf and len(buf) >= buf.index(b"#") + 3:
            start, end = buf.index(b"$"), buf.index(b"#")
            data, buf = buf[start + 1:end].decode(), buf[end + 3:]
            conn.sendall(b"+")
            yield data


def reply(conn, data):
    conn.sendall(b"$%s#%02x" % (data.encode(), sum(data.encode()) % 256))


def gdbstub(s):
    conn, _ = s.accept()
    continues = 0
    for data in packets(conn):
        if data == "?" or data[:2] in ("Z0", "z0"):
            reply(conn, "S05" if data == "?" else "OK")
        elif data == "c":
            continues += 1
            if continues == 1 and stops:
                write_log(before)
                reply(conn, "S05")
            else:
                return conn


def run():
    sys.stderr.write(stderr)
    sys.stderr.flush()
    out.write(console)
    out.flush()
    if "HANG" in console:
        if sys.stdin.readline().strip() == "KR_DUMP":
            out.write("KR_DUMP\\r\\n" + dump)
            out.flush()
        time.sleep(600)


gdb, mon = socket_of("-gdb"), socket_of("-monitor")
if mon is not None:
    threading.Thread(target=monitor, args=(mon,), daemon=True).start()
if gdb is not None:
    held = gdbstub(gdb)  # the connection stays open until the fake exits
    write_log(after)
else:
    write_log(before + after)
run()
sys.exit(int(code or 0))
"""


def fake_qemu(
    tmp_path: Path,
    console: str,
    stderr: str = "",
    dump: str = "",
    code: int = 0,
    log: str = "",
    stops: bool = True,
) -> str:
    """An executable that stands in for QEMU: prints `console` (and `stderr`) and exits `code`;
    with "HANG" in the console it waits, answering a `KR_DUMP` line on stdin with `dump`. `log`
    and `stops`: see the module docstring."""
    files = []
    for name, text in (
        ("console", console),
        ("stderr", stderr),
        ("dump", dump),
        ("code", str(code)),
        ("log", log),
        ("stops", "yes" if stops else ""),
    ):
        (tmp_path / f"fake.{name}").write_text(text)
        files.append(str(tmp_path / f"fake.{name}"))
    (tmp_path / "fake_qemu.py").write_text(SCRIPT)
    exe = tmp_path / "qemu"
    exe.write_text(
        f'#!/bin/sh\nexec {sys.executable} {tmp_path / "fake_qemu.py"} {" ".join(files)} "$@"\n'
    )
    exe.chmod(0o755)
    return str(exe)
