"""Which QEMU `-device` values a traced or tested guest may have: none that reach the host.

A `kernel_baseline`'s `devices` are passed to QEMU as `-device` values. QEMU devices can load host
files into the guest (`loader,file=...`, any PCI device's `romfile=`), pass host devices through
(`vfio-pci`, `usb-host`), or connect to host backends (`chardev=`, `netdev=`, `drive=`, ...). A
guest's inputs must be what the cache key holds, and guests are isolated from the host, so
`device_problem` refuses:

- the JSON form (`{"driver": ...}`): only `driver[,prop=value...]` is accepted, so that every
  property is seen here;
- drivers that read host files, pass host devices through or use a host resource by default
  (`HOST_DRIVERS`, matched by name or prefix);
- properties that name host files, host devices or backends (`HOST_PROPERTIES`), whatever the
  driver;
- any property value holding `/` (a host path, whatever the property is called).

The parser follows QEMU's option syntax (QemuOpts): comma-separated `key=value` pairs, `,,` is a
literal comma, the first element without `=` is the driver, a bare `key` is a flag. Pure Python.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

# driver name or name prefix (ending in "-") -> what it does with the host
HOST_DRIVERS = {
    "loader": "loads a host file (or any data) into guest memory",
    "guest-loader": "loads host files as a guest kernel and initrd",
    "vfio": "passes a host device through",
    "vhost-": "uses a host vhost device or a vhost-user socket",
    "usb-host": "passes a host USB device through",
    "u2f-passthru": "passes a host U2F key (hidraw) through",
    "usb-redir": "redirects a USB device over a host character device",
    "usb-mtp": "exports a host directory to the guest",
    "virtio-9p": "shares a host directory with the guest",
    "virtio-input-host": "passes a host input device (evdev) through",
    "ivshmem": "shares host memory with the guest",
    "ccid-card-": "uses host smart cards or a host certificate database",
    "scsi-generic": "passes a host SCSI device through",
    "scsi-block": "passes a host block device through",
    "tpm-": "uses a host TPM",
    "ipmi-bmc-extern": "connects to an external BMC over a host character device",
    "intel-hda": "plays and records through a host audio backend",
    "ich9-intel-hda": "plays and records through a host audio backend",
    "hda-": "plays and records through a host audio backend",
    "ac97": "plays and records through a host audio backend",
    "es1370": "plays and records through a host audio backend",
    "sb16": "plays and records through a host audio backend",
    "adlib": "plays and records through a host audio backend",
    "cs4231a": "plays and records through a host audio backend",
    "gus": "plays and records through a host audio backend",
    "usb-audio": "plays and records through a host audio backend",
    "virtio-sound": "plays and records through a host audio backend",
}
_FILE = "names a host file"
_DEVICE = "names a host device or file descriptor"
_BACKEND = (
    "connects the device to a host backend (kernel_rules defines none: guests get no "
    "host network, disk, console or filesystem)"
)
HOST_PROPERTIES = {
    **{
        p: _FILE
        for p in (
            "file",
            "romfile",
            "path",
            "rootdir",
            "sysfsdev",
            "kernel",
            "initrd",
            "dtb",
            "evdev",
            "db",
            "x-igd-opregion",
        )
    },
    **{
        p: _DEVICE
        for p in (
            "host",
            "hostbus",
            "hostaddr",
            "hostport",
            "hostdevice",
            "fd",
            "fds",
            "vhostfd",
            "vhostfds",
            "vhostdev",
            "vhostforce",
        )
    },
    **{
        p: _BACKEND
        for p in (
            "chardev",
            "netdev",
            "drive",
            "fsdev",
            "memdev",
            "tpmdev",
            "audiodev",
            "rng",
            "backend",
            "bmc",
            "vhost",
            "socket",
        )
    },
}


def parse_device(text: str) -> List[Tuple[str, str]]:
    """The (property, value) pairs of one `-device` value, in order, as QEMU's QemuOpts reads
    them: the first element without `=` is the value of `driver`, a later bare `name` is the flag
    `name=on`, and `,,` in a value is a literal comma."""
    items: List[Tuple[str, str]] = []
    pos = 0
    while pos <= len(text):
        end = pos
        while end < len(text) and text[end] not in ",=":
            end += 1
        if end < len(text) and text[end] == "=":
            key = text[pos:end]
            value, pos = _value(text, end + 1)
        elif not items:
            key = "driver"
            value, pos = _value(text, pos)
        else:
            key, value, pos = text[pos:end], "on", end + 1
        items.append((key, value))
    return items


def _value(text: str, pos: int) -> Tuple[str, int]:
    """The value starting at `pos` up to the next single `,` (`,,` is a literal comma), and the
    position after that comma."""
    out = []
    while pos < len(text):
        if text[pos] == ",":
            if text[pos + 1 : pos + 2] == ",":
                out.append(",")
                pos += 2
                continue
            break
        out.append(text[pos])
        pos += 1
    return "".join(out), pos + 1


def _host_driver(driver: str) -> Optional[str]:
    name = driver.lower()
    name = name[2:] if name.startswith("x-") else name  # QEMU's experimental spelling
    for key, why in HOST_DRIVERS.items():
        if name == key.rstrip("-") or name.startswith(key if key.endswith("-") else key + "-"):
            return f"the `{driver}` device {why}"
    return None


def device_problem(text: str) -> Optional[str]:
    """Why the `-device` value `text` could reach the host, or None when it cannot."""
    stripped = text.strip()
    if not stripped:
        return "no device: name a QEMU device driver, e.g. `virtio-rng-pci`"
    if stripped.startswith("{"):
        return "the JSON form is not accepted: write it as `driver,property=value,...`"
    if any(ord(ch) < 0x20 for ch in text):
        return "a newline or another control character is not part of a device"
    items = parse_device(text)
    drivers = [v for k, v in items if k == "driver"]
    if not any(drivers):
        return "no device driver: start with one, e.g. `virtio-rng-pci`"
    for name in drivers:  # QEMU uses the last `driver=`: refuse if any is a host driver
        why = _host_driver(name)
        if why:
            return why
    for key, value in items:
        if key == "driver":
            continue
        why = HOST_PROPERTIES.get(key.lower())
        if why:
            return f"property `{key}` {why}"
        if "/" in value:
            return f"property `{key}={value}` looks like a host path"
    return None
