"""The guests' `/init` programs: the guest side of the console protocol, assembled from the
writers of guest.protocol (every marker, its line format and its host-side parser are there).

`BOOT_INIT`, the minimal guest image used by `run`, boot checks and boot traces: it first runs
the user-space marker (`/bin/kr-userspace-begin`, a jump to domain.guest.protocol.USERSPACE_BEGIN, where a
boot trace's kernel initialisation phase ends; elsewhere it does nothing), then mounts /proc,
/sys and /dev when the kernel supports them, runs the baseline's boot step
(`/etc/kernel_rules/boot.sh`) if the image has one, prints the init marker (the proof that the
kernel booted to user space) and then confirms the mode it runs in: with `kernel_rules.mode=check`
on the kernel command line (`pants test`, boot traces) it lowers the console loglevel, prints
`KR_MODE check boot_script=<none|exit status>` and powers off; otherwise it prints
`KR_MODE interactive boot_script=... cmdline_bytes=<n>` and gives the console a shell
(`pants run`; leaving the shell ends the guest). See domain.guest.protocol.check_problem for the host's
reading.

`render_app_init`, the app guest (traces and app checks): it runs the baseline's boot step
(`/etc/kernel_rules/boot.sh`, when the image has one) before the init marker, as the deployment
does, and the workload only when that step exited 0 (otherwise the reported status is the boot
step's, and the output says so); it runs the workload with its stdin on /dev/null and its stdout and stderr in a file, between the window markers, and then reports it
*framed*, so that nothing else on the console (kernel messages, above all) can be taken for the
workload's output or status: it lowers the console loglevel (`dmesg -n 1`, printk no longer
reaches the console), then prints

    KR_OUTPUT_BEGIN
    KR_OUTPUT <base64 of the output, 76 characters a line>
    ...
    KR_WORKLOAD_STATUS <exit status> <output bytes> <sha256 of the output>

If the host sends a line `KR_DUMP` on the console (it does when the workload ran out of time), a
listener started before the window reports the output so far the same way, ending with
`KR_WORKLOAD_RUNNING <output bytes> <sha256>`. See domain.guest.protocol for the host's reading.
"""

from kernel_rules.domain.guest.protocol import (
    CHECK_PARAM,
    DUMP_LISTENER,
    FRAME_FUNCTION,
    LIST_MODULE_SECTIONS,
    PRINT_DONE,
    PRINT_MEMINFO,
    PRINT_MODE_CHECK,
    PRINT_MODE_INTERACTIVE,
    PRINT_MODULES,
    PRINT_WINDOW_REQUEST,
    REPORT_STATUS,
    USERSPACE_BEGIN_PROGRAM,
    WINDOW_BEGIN_PROGRAM,
    WINDOW_END_PROGRAM,
    WORKLOAD_LOG,
    print_init_marker,
)

BOOT_SCRIPT = "etc/kernel_rules/boot.sh"
MODULE_LIST = "etc/kernel_rules/modules"  # see domain.prebuilt.debian


# Loads the image's modules, in order, when they are for the running kernel (a tailored kernel
# built without module support boots the same image and skips them).
LOAD_MODULES = f"""
kr_modules=/lib/modules/$(uname -r)
if [ -f /{MODULE_LIST} ] && [ -d "$kr_modules" ] && [ -e /proc/modules ]; then
  while read -r kr_m; do
    insmod "$kr_modules/$kr_m" || echo "kernel_rules: insmod $kr_m failed"
  done < /{MODULE_LIST}
fi
"""
BOOT_INIT = f"""#!/bin/sh
{USERSPACE_BEGIN_PROGRAM}
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
{LOAD_MODULES}
kr_boot=none
if [ -f /{BOOT_SCRIPT} ]; then
  /bin/sh /{BOOT_SCRIPT}
  kr_boot=$?
  [ "$kr_boot" = 0 ] || echo "kernel_rules: the boot step (boot_script) exited with status $kr_boot"
fi
{LIST_MODULE_SECTIONS}
{print_init_marker(proc_may_be_missing=True)}
case " $(cat /proc/cmdline 2>/dev/null) " in
  *" {CHECK_PARAM} "*)
    dmesg -n 1 2>/dev/null
    {PRINT_MODE_CHECK}
    reboot -f ;;
esac
{PRINT_MODE_INTERACTIVE}
echo "kernel_rules: busybox shell; 'exit' powers the guest off"
setsid cttyhack sh
reboot -f
"""


APP_INIT_TEMPLATE = """#!/bin/sh
# /init of the traced guest for {{ app | q }}; rendered by kernel_rules, every value quoted.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts /dev/shm /run /var/tmp /var/log
mount -t devpts devpts /dev/pts 2>/dev/null
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
{{ load_modules }}
# The baseline's boot step (its `boot_script`), as on the deployment: before the window.
kr_boot=0
if [ -f /{{ boot_script }} ]; then
  /bin/sh /{{ boot_script }} < /dev/null
  kr_boot=$?
fi
{{ init_marker }}
{{ meminfo }}
cd /app 2>/dev/null || cd /
# kr_frame END: the workload's output (a snapshot) framed for the host, ending with the line
# "END <bytes> <sha256>"; printk is kept off the console first.
{{ frame_function }}
# The output so far, on the host's request (a timeout). Started before the quiet wait, so that
# it is already blocked reading the console when the window begins.
{{ dump_listener }}
kr_listener=$!
# Let asynchronous boot work (device probing) finish first, so that it does not run inside the
# window: wait until the kernel log has been quiet for 3 checks in a row (at most 6 s).
quiet=0; last=""; i=0
while [ $quiet -lt 3 ] && [ $i -lt 30 ]; do
  now=$(dmesg 2>/dev/null | wc -l)
  if [ "$now" = "$last" ]; then quiet=$((quiet + 1)); else quiet=0; fi
  last=$now; i=$((i + 1)); sleep 0.2
done
{{ window_request }}
{{ window_begin }}
if [ "$kr_boot" = 0 ]; then
  /bin/sh /app/{{ workload | q }} < /dev/null > {{ workload_log }} 2>&1
  status=$?
else
  echo "kernel_rules: the boot step (boot_script) exited with status $kr_boot" > {{ workload_log }}
  status=$kr_boot
fi
{{ window_end }}
kill $kr_listener 2>/dev/null
{{ report_status }}
{{ print_modules }}
{{ list_module_sections }}
{{ done }}
reboot -f
"""


def render_app_init(app: str, workload: str) -> str:
    """The app guest's /init; `app` and `workload` come from BUILD files and are shell-quoted."""
    import shlex

    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["q"] = shlex.quote
    return env.from_string(APP_INIT_TEMPLATE).render(
        app=app,
        workload=workload,
        init_marker=print_init_marker(proc_may_be_missing=False),
        meminfo=PRINT_MEMINFO,
        frame_function=FRAME_FUNCTION,
        dump_listener=DUMP_LISTENER,
        window_request=PRINT_WINDOW_REQUEST,
        window_begin=WINDOW_BEGIN_PROGRAM,
        workload_log=WORKLOAD_LOG,
        window_end=WINDOW_END_PROGRAM,
        report_status=REPORT_STATUS,
        print_modules=PRINT_MODULES,
        done=PRINT_DONE,
        load_modules=LOAD_MODULES.strip(),
        list_module_sections=LIST_MODULE_SECTIONS.strip(),
        boot_script=BOOT_SCRIPT,
    )
