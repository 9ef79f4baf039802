"""A minimal client of QEMU's gdbstub (the GDB remote serial protocol), to stop a guest at an
exact instruction.

A breakpoint stops the virtual CPU synchronously, before the instruction at its address runs, so
with `-icount` the guest is stopped at the same instruction count on every run, however late the
host reacts. Only what the tracer needs: set and remove a software breakpoint, continue, and wait
for the stop reply. Packets are `$<data>#<checksum>`, each acknowledged with `+`.
"""

from __future__ import annotations

import socket
import time
from typing import Callable, Optional


class GdbError(Exception):
    """The stub refused a command or the connection failed."""


def packet(data: str) -> bytes:
    return f"${data}#{sum(data.encode()) % 256:02x}".encode()


class GdbClient:
    def __init__(
        self, path: str, timeout: float = 30, alive: Optional[Callable[[], bool]] = None
    ) -> None:
        """Connect to the stub at `path`, retrying for up to `timeout` seconds while QEMU starts;
        `alive()` (when given) says whether QEMU still runs: once it does not, give up at once."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if alive is not None and not alive():
                    raise GdbError("QEMU exited before its gdbstub accepted a connection") from None
                if time.monotonic() > deadline:
                    raise GdbError(f"cannot connect to QEMU's gdbstub at {path}") from None
                time.sleep(0.05)
        self.buf = b""

    def send(self, data: str) -> None:
        self.sock.sendall(packet(data))

    def reply(self, timeout: Optional[float]) -> Optional[str]:
        """The next packet's data (acknowledged), or None if none came within `timeout`."""
        self.sock.settimeout(timeout)
        while True:
            start = self.buf.find(b"$")
            end = self.buf.find(b"#", start + 1) if start >= 0 else -1
            if start >= 0 and end >= 0 and len(self.buf) >= end + 3:
                data = self.buf[start + 1 : end].decode(errors="replace")
                self.buf = self.buf[end + 3 :]
                self.sock.sendall(b"+")
                return data
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                return None
            if not chunk:
                raise GdbError("QEMU closed the gdbstub connection")
            self.buf += chunk

    def command(self, data: str, timeout: float = 10) -> str:
        self.send(data)
        answer = self.reply(timeout)
        if answer is None:
            raise GdbError(f"no answer to {data!r}")
        return answer

    def set_breakpoint(self, address: int) -> None:
        if self.command(f"Z0,{address:x},1") != "OK":
            raise GdbError(f"QEMU refused a breakpoint at {address:#x}")

    def remove_breakpoint(self, address: int) -> None:
        if self.command(f"z0,{address:x},1") != "OK":
            raise GdbError(f"QEMU refused to remove the breakpoint at {address:#x}")

    def close(self) -> None:
        self.sock.close()
