"""The guest side of the console protocol, run on the host: the shell writers of
domain.guest.protocol (as the guests' /init programs run them) under the host's busybox sh, with
the guest's paths moved into a test directory. `dmesg` is a no-op here (the writers lower the
console loglevel, which must not touch the host's)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Mapping

from kernel_rules.domain.guest import protocol
from tests.conftest import require_tools

# A console up to the app guest's window: kernel messages, the init marker, the window request.
KERNEL_LOG = """\
Linux version 6.1.192 (kernel_rules@kernel_rules) #1 SMP
Run /init as init process
KERNEL_RULES_INIT_OK kernel 6.1.192 uptime 0.97
KR_WINDOW_REQUEST
"""


def run_guest_sh(script: str, moved: Mapping[str, str] = {}, stdin: bytes = b"") -> str:
    """What `script` prints under busybox sh, each guest path of `moved` replaced by its test
    path."""
    require_tools("busybox")
    for guest_path, path in moved.items():
        script = script.replace(guest_path, path)
    done = subprocess.run(
        ["busybox", "sh", "-c", "dmesg() { :; }\n" + script],
        input=stdin,
        capture_output=True,
        check=True,
        env={"PATH": "/bin:/usr/bin"},
    )
    return done.stdout.decode()


def guest_report(tmp_path: Path, output: bytes, end: str) -> str:
    """What the app guest prints when it frames a workload output `output` with `kr_frame END`
    (`end`: `KR_WORKLOAD_STATUS <status>` or `KR_WORKLOAD_RUNNING`)."""
    (tmp_path / "kr-workload.log").write_bytes(output)
    return run_guest_sh(f'{protocol.FRAME_FUNCTION}\nkr_frame "{end}"\n', {"/tmp/": f"{tmp_path}/"})
