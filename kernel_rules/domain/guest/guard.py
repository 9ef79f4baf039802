"""Run an interactive QEMU that dies with the run: `python3 .../guard.py -- QEMU ARGS...`.

`pants run` starts QEMU through this guard so that QEMU dies with the run, even when the Pants
process that started it is killed. It imports nothing but the standard library, so it runs by
path from the run's sandbox.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Sequence

PR_SET_PDEATHSIG = 1


def run_guarded(argv: Sequence[str], poll: float = 0.5) -> int:
    """Run `argv` (an interactive QEMU, on this process's terminal) as a child that dies with the
    run, and return its exit status. The child gets SIGTERM when this process dies, however it
    dies (PR_SET_PDEATHSIG, set for this single-threaded process); this process stops the child
    when its own parent, the process that started the run (Pants), is gone, and passes SIGINT,
    SIGTERM and SIGHUP on to it. SIGTERM lets QEMU restore the terminal; SIGKILL follows after
    5 s."""
    parent, me = os.getppid(), os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def die_with_me() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != me:  # this process died before prctl took effect
            os._exit(1)

    proc = subprocess.Popen(list(argv), preexec_fn=die_with_me)

    def forward(signum, _frame) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            code = proc.wait(timeout=poll)
            break
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:
            proc.terminate()
            try:
                code = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            break
    return code if code >= 0 else 128 - code


def main(argv: Sequence[str]) -> int:
    if argv[:1] != ["--"] or len(argv) < 2:
        print("usage: guard.py -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    return run_guarded(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
