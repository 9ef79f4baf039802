"""The gdbstub client against a real QEMU: start stopped, break at a guest address, continue."""

from __future__ import annotations

import subprocess

from kernel_rules.domain.trace.gdbstub import GdbClient, packet
from tests.conftest import require_tools


def test_packets_carry_the_modulo_256_checksum():
    assert packet("c") == b"$c#63"
    assert packet("Z0,333333333000,1") == b"$Z0,333333333000,1#" + (
        b"%02x" % (sum(b"Z0,333333333000,1") % 256)
    )


def test_breakpoint_stops_qemu_at_the_address(tmp_path):
    """The CPU starts at the reset vector (linear 0xfffffff0): a breakpoint there stops it at
    once, which nothing else would (QEMU runs the firmware with no device to wait for)."""
    require_tools("qemu-system-x86_64")
    sock = tmp_path / "gdb.sock"
    qemu = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-S",
            "-accel",
            "tcg",
            "-gdb",
            f"unix:{sock},server=on,wait=off",
            "-nic",
            "none",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = GdbClient(str(sock))
        assert client.command("?")[:1] in ("S", "T")
        client.set_breakpoint(0xFFFFFFF0)
        client.send("c")
        stop = client.reply(30)
        assert stop is not None and stop[:1] in ("S", "T"), stop
        client.remove_breakpoint(0xFFFFFFF0)
        client.close()
    finally:
        qemu.kill()
        qemu.wait()
