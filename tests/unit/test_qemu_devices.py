"""`-device` values a guest may have: none that reach host files or host resources."""

from __future__ import annotations

import pytest

from kernel_rules.domain.guest.qemu_devices import device_problem, parse_device


def test_parses_like_qemu_options():
    assert parse_device("virtio-rng-pci") == [("driver", "virtio-rng-pci")]
    assert parse_device("e1000,mac=52:54:00:12:34:56,id=n,,1,x") == [
        ("driver", "e1000"),
        ("mac", "52:54:00:12:34:56"),
        ("id", "n,1"),
        ("x", "on"),
    ]
    assert parse_device("driver=loader,file=/x") == [("driver", "loader"), ("file", "/x")]


@pytest.mark.parametrize(
    "device",
    [
        "virtio-rng-pci",
        "virtio-net-pci",
        "virtio-rng-pci,id=rng0,bus=pcie.0",
        "e1000",
        "virtio-serial-pci",
        "pvpanic,ioport=0x505",
        "i6300esb",
        "virtio-balloon-pci",
    ],
)
def test_devices_without_a_host_side_are_allowed(device):
    assert device_problem(device) is None


@pytest.mark.parametrize(
    "device, problem",
    [
        ("loader,file=/etc/passwd,addr=0x1000000", "the `loader` device loads a host file"),
        ("loader,addr=0x1000,data=1,data-len=4", "the `loader` device"),
        ("guest-loader,addr=0x1000,kernel=/boot/vmlinuz", "the `guest-loader` device"),
        ("virtio-rng-pci,driver=loader,file=/x", "the `loader` device"),
        ("driver=loader,file=/x", "the `loader` device"),
        ("virtio-net-pci,romfile=/etc/shadow", "property `romfile` names a host file"),
        ("virtio-net-pci,ROMFILE=x.rom", "property `ROMFILE` names a host file"),
        ("vfio-pci,host=0000:01:00.0", "the `vfio-pci` device passes a host device through"),
        ("x-vfio-user-pci,socket=s", "the `x-vfio-user-pci` device passes a host device through"),
        ("usb-host,hostbus=1,hostaddr=2", "the `usb-host` device"),
        ("vhost-vsock-pci,guest-cid=3", "the `vhost-vsock-pci` device uses a host vhost device"),
        ("vhost-user-fs-pci,chardev=c", "the `vhost-user-fs-pci` device"),
        ("virtio-9p-pci,fsdev=f,mount_tag=m", "the `virtio-9p-pci` device shares a host directory"),
        ("usb-mtp,rootdir=/home", "the `usb-mtp` device exports a host directory"),
        ("virtio-input-host-pci,evdev=/dev/input/event0", "the `virtio-input-host-pci` device"),
        ("ivshmem-plain,memdev=m", "the `ivshmem-plain` device shares host memory"),
        ("intel-hda", "host audio backend"),
        ("AC97", "host audio backend"),
        ("virtconsole,chardev=c0", "property `chardev` connects the device to a host backend"),
        ("isa-serial,chardev=c0", "property `chardev`"),
        ("e1000,netdev=n0", "property `netdev`"),
        ("virtio-blk-pci,drive=d0", "property `drive`"),
        ("virtio-rng-pci,rng=r0", "property `rng`"),
        ("virtio-net-pci,vhostfd=3", "property `vhostfd` names a host device or file descriptor"),
        ("virtio-blk-pci,serial=../../etc", "property `serial=../../etc` looks like a host path"),
        ('{"driver": "loader", "file": "/etc/passwd"}', "the JSON form is not accepted"),
        ("", "no device"),
        (",file=/x", "no device driver"),
        ("virtio-rng-pci\n-device loader", "control character"),
    ],
)
def test_devices_that_reach_the_host_are_refused(device, problem):
    why = device_problem(device)
    assert why is not None and problem in why, why


def test_machine_properties_that_reach_the_host_are_refused():
    from kernel_rules.targets.fields import machine_problem

    for ok in ("q35", "pc-q35-7.2", "q35,accel=tcg", "microvm,x-option-roms=off"):
        assert machine_problem(ok) == "", ok
    for bad in (
        "q35,dumpdtb=/tmp/x.dtb",
        "q35,memory-backend=m0",
        "pc,firmware=x.bin",
        "q35,x=a/b",
        "q35;rm",
    ):
        assert machine_problem(bad), bad
