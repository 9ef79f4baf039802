"""A BuildGrid REAPI cache on loopback for tests and benchmarks (started and stopped here)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, List

from tests.e2e.workspace import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def buildgrid_server(state: Path) -> Iterator[str]:
    """Install (once) and run BuildGrid with third_party/buildgrid/cache-only.yml; yields the
    `grpc://` address. The server and its children are stopped on exit."""
    setup = subprocess.run(
        [str(REPO / "third_party/buildgrid/setup.sh")], capture_output=True, text=True, timeout=600
    )
    if setup.returncode != 0:
        raise RuntimeError(f"installing BuildGrid failed:\n{setup.stderr[-2000:]}")
    bgd = setup.stdout.strip().splitlines()[-1]
    port = free_port()
    (state / "cas").mkdir(parents=True, exist_ok=True)
    config = (REPO / "third_party/buildgrid/cache-only.yml").read_text()
    (state / "config.yml").write_text(
        config.replace("@PORT@", str(port)).replace("@STORAGE@", str(state / "cas"))
    )
    with open(state / "bgd.log", "w") as log:
        server = subprocess.Popen(
            [bgd, "server", "start", str(state / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            "BuildGrid did not start:\n" + (state / "bgd.log").read_text()[-2000:]
                        )
                    time.sleep(0.5)
            yield f"grpc://127.0.0.1:{port}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, 15)
            server.wait(timeout=30)


def remote_flags(address: str, read: bool, write: bool) -> List[str]:
    return [
        f"--remote-store-address={address}",
        "--remote-instance-name=main",
        f"--{'' if read else 'no-'}remote-cache-read",
        f"--{'' if write else 'no-'}remote-cache-write",
        "--stats-log",
        "--no-pantsd",
    ]


def stats_counter(output: str, name: str) -> int:
    """A counter from Pants' `--stats-log` output (0 when absent)."""
    m = re.search(rf"^\s*{name}: (\d+)$", output, re.M)
    return int(m.group(1)) if m else 0


@contextlib.contextmanager
def redis_server(state: Path) -> Iterator[str]:
    """Debian's redis-server on loopback, in memory only; yields its `redis://` URL."""
    redis = shutil.which("redis-server", path="/usr/bin:/usr/sbin:/bin:/sbin")
    if redis is None:
        raise RuntimeError(
            "redis-server is missing: run third_party/setup.sh --debian-cloud as root "
            "(it installs the pinned example packages)"
        )
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with open(state / "redis.log", "w") as log:
        server = subprocess.Popen(
            [
                redis,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(state),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server did not start:\n{(state / 'redis.log').read_text()}"
                )
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
