"""The `/init` of the minimal guest image used by `run` and boot checks of kernel images.

It mounts /proc, /sys and /dev when the kernel supports them, prints the init marker (the proof
that the kernel booted to user space), and then either powers off at once (`kernel_rules.mode=check`
on the kernel command line, used by `pants test`) or gives the console a shell (`pants run`).
Leaving the shell ends the guest.
"""

from kernel_rules.domain.qemu import CHECK_PARAM, INIT_MARKER

BOOT_INIT = f"""#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "{INIT_MARKER} kernel $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime 2>/dev/null)"
case " $(cat /proc/cmdline 2>/dev/null) " in
  *" {CHECK_PARAM} "*) reboot -f ;;
esac
echo "kernel_rules: busybox shell; 'exit' powers the guest off"
setsid cttyhack sh
reboot -f
"""
