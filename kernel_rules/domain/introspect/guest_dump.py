"""Boot a kernel with a small guest, take a raw dump of its physical memory through QEMU's
monitor, and return the guest's own process list: the input `introspect.ps` is checked against.

The guest's /init starts named worker processes, prints its process list from /proc (shell
builtins only, so that listing starts no process) between `KR_GUEST_PS_BEGIN` and
`KR_GUEST_PS_END`, and waits. The host then stops the guest and writes `pmemsave 0 <RAM>` over
QMP (physical address 0 at file offset 0). The guest gets no network and no host files: its only
devices are QEMU's defaults for the machine and the serial console.

Run as `python3 -m kernel_rules.domain.introspect.guest_dump --kernel BZIMAGE --out DUMP`:
writes DUMP and DUMP.ps.json (the guest's list), exit code 0; 1 when the guest fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Set, Tuple

from kernel_rules.domain.guest import initramfs
from kernel_rules.domain.guest.qemu import BootSpec, Machine, command_line

MEMORY_MIB = 256
WORKERS = ("kr-worker-1", "kr-worker-2", "kr-worker-3")
LISTED = "KR_GUEST_PS_END"
INIT = f"""#!/bin/sh
mount -t proc proc /proc
grep -q devtmpfs /proc/filesystems && mount -t devtmpfs dev /dev
[ -e /dev/null ] || mknod -m 666 /dev/null c 1 3
for w in {" ".join(WORKERS)}; do /bin/$w & done
sleep 2
echo KR_GUEST_PS_BEGIN
for d in /proc/[0-9]*; do
  read comm < $d/comm
  echo "KR_GUEST_PS ${{d#/proc/}} $comm"
done
echo {LISTED}
wait
"""
WORKER = "#!/bin/sh\nsleep 100000\n"
_LISTED_LINE = re.compile(r"KR_GUEST_PS (\d+) (.*)$")


class GuestFailed(Exception):
    """The guest stopped, timed out or did not list its processes; the message has the console's
    tail."""


def demo_image(busybox: str = "/bin/busybox") -> bytes:
    """The guest's initramfs (gzip'd newc cpio): busybox, the /init above and the workers."""
    extra = [initramfs.regular(f"bin/{w}", WORKER.encode(), executable=True) for w in WORKERS]
    entries = initramfs.busybox_initramfs(
        Path(busybox).read_bytes(), initramfs.busybox_applets(busybox), INIT.encode(), extra
    )
    return initramfs.gzip_deterministic(initramfs.cpio_newc(entries))


def qmp(sock_path: Path, command: dict, timeout: float = 120) -> dict:
    """Run one QMP command (after the capabilities handshake) and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        f = s.makefile("rwb")
        json.loads(f.readline())  # greeting
        for cmd in ({"execute": "qmp_capabilities"}, command):
            f.write(json.dumps(cmd).encode() + b"\n")
            f.flush()
            while True:
                answer = json.loads(f.readline())
                if "return" in answer or "error" in answer:
                    break
        return answer


def guest_comm(comm: str) -> str:
    """`task_struct.comm` as the guest's /proc shows it: a workqueue worker's name there carries
    the workqueue it last ran (`kworker/0:1-events`), which the kernel adds when printing."""
    return comm.split("-", 1)[0] if comm.startswith("kworker/") else comm


def boot_and_dump(
    bzimage: Path, image: Path, work: Path, timeout: float = 300
) -> Tuple[Set[Tuple[int, str]], Path]:
    """Boot `bzimage` with `image` (from `demo_image`); return the guest's own process list
    {(pid, comm)} and the path of a raw dump of its physical memory (`work/memory.raw`), taken
    after the list was printed. Raises GuestFailed."""
    sock, dump = work / "qmp.sock", work / "memory.raw"
    spec = BootSpec(
        qemu="qemu-system-x86_64",
        kernel=str(bzimage),
        initrd=str(image),
        cmdline="console=ttyS0 nokaslr",
        machine=Machine("q35", 1, f"{MEMORY_MIB}M"),
    )
    argv = command_line(spec) + ["-qmp", f"unix:{sock},server=on,wait=off"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    console: List[str] = []
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            console.append(line)
            if line.strip() == LISTED:
                break
            if time.monotonic() > deadline:
                raise GuestFailed(f"no process list after {timeout:.0f} s:\n" + _tail(console))
        else:
            raise GuestFailed("the guest stopped before listing:\n" + _tail(console))
        for command in (
            {"execute": "stop"},
            {
                "execute": "pmemsave",
                "arguments": {"val": 0, "size": MEMORY_MIB << 20, "filename": str(dump)},
            },
        ):
            answer = qmp(sock, command)
            if "return" not in answer:
                raise GuestFailed(f"QMP {command['execute']}: {answer}")
    finally:
        proc.kill()
        proc.wait()
    listed = {
        (int(m.group(1)), guest_comm(m.group(2)))
        for m in (_LISTED_LINE.match(line.strip()) for line in console)
        if m
    }
    if not {c for _, c in listed} >= set(WORKERS):
        raise GuestFailed("the guest's list lacks the workers:\n" + _tail(console))
    return listed, dump


def _tail(console: List[str]) -> str:
    return "\n".join(console[-40:])


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel", required=True, type=Path, help="the bzImage to boot")
    parser.add_argument("--out", required=True, type=Path, help="where the raw dump goes")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        image = work / "initramfs.cpio.gz"
        image.write_bytes(demo_image())
        try:
            listed, dump = boot_and_dump(args.kernel, image, work)
        except GuestFailed as e:
            print(f"guest_dump: {args.kernel}: {e}", file=sys.stderr)
            return 1
        shutil.move(str(dump), str(args.out))
    ps = [{"pid": pid, "comm": comm} for pid, comm in sorted(listed)]
    Path(f"{args.out}.ps.json").write_text(json.dumps(ps, indent=1) + "\n")
    print(f"{args.out}: {MEMORY_MIB} MiB dump; the guest listed {len(ps)} processes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
