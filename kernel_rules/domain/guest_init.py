"""The `/init` of the minimal guest image used by `run` and boot checks of kernel images.

It mounts /proc, /sys and /dev when the kernel supports them, runs the baseline's boot step
(`/etc/kernel_rules/boot.sh`) if the image has one, prints the init marker (the proof
that the kernel booted to user space), and then either powers off at once (`kernel_rules.mode=check`
on the kernel command line, used by `pants test`) or gives the console a shell (`pants run`).
Leaving the shell ends the guest.
"""

from kernel_rules.domain.qemu import CHECK_PARAM, INIT_MARKER

BOOT_SCRIPT = "etc/kernel_rules/boot.sh"
MODULE_LIST = "etc/kernel_rules/modules"  # see domain.prebuilt
MODULE_SECTION = "KR_MODSECT"  # `KR_MODSECT <module> <section> <address>`: see domain.modules
MEMINFO = "KR_MEMINFO"  # `KR_MEMINFO <MemTotal kB> <MemAvailable kB>`

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
# Where each loaded module's code sections are, for mapping traced module addresses.
LIST_MODULE_SECTIONS = f"""
for kr_d in /sys/module/*/sections; do
  [ -d "$kr_d" ] || continue
  kr_m=${{kr_d%/sections}}; kr_m=${{kr_m##*/}}
  for kr_f in "$kr_d"/.*text*; do
    [ -f "$kr_f" ] && echo "{MODULE_SECTION} $kr_m ${{kr_f##*/}} $(cat "$kr_f")"
  done
done
"""
PRINT_MEMINFO = (
    f'echo "{MEMINFO} $(sed -n "s/^MemTotal: *\\([0-9]*\\).*/\\1/p" /proc/meminfo)'
    ' $(sed -n "s/^MemAvailable: *\\([0-9]*\\).*/\\1/p" /proc/meminfo)"')

BOOT_INIT = f"""#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
{LOAD_MODULES}
[ -f /{BOOT_SCRIPT} ] && /bin/sh /{BOOT_SCRIPT}
{LIST_MODULE_SECTIONS}
echo "{INIT_MARKER} kernel $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime 2>/dev/null)"
case " $(cat /proc/cmdline 2>/dev/null) " in
  *" {CHECK_PARAM} "*) reboot -f ;;
esac
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
echo "{{ marker }} kernel $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime)"
{{ meminfo }}
cd /app 2>/dev/null || cd /
# Let asynchronous boot work (device probing) finish first, so that it does not run inside the
# window: wait until the kernel log has been quiet for 3 checks in a row (at most 6 s).
quiet=0; last=""; i=0
while [ $quiet -lt 3 ] && [ $i -lt 30 ]; do
  now=$(dmesg 2>/dev/null | wc -l)
  if [ "$now" = "$last" ]; then quiet=$((quiet + 1)); else quiet=0; fi
  last=$now; i=$((i + 1)); sleep 0.2
done
echo {{ request }}
/bin/kr-window-begin
/bin/sh /app/{{ workload | q }} > /tmp/kr-workload.log 2>&1
status=$?
/bin/kr-window-end
cat /tmp/kr-workload.log
echo "KR_WORKLOAD_STATUS $status"
sed 's/^/KR_MODULE /' /proc/modules 2>/dev/null
{{ list_module_sections }}
echo KR_DONE
reboot -f
"""


def render_app_init(app: str, workload: str) -> str:
    """The app guest's /init; `app` and `workload` come from BUILD files and are shell-quoted."""
    import shlex

    import jinja2

    from kernel_rules.domain.tracer import WINDOW_REQUEST

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["q"] = shlex.quote
    return env.from_string(APP_INIT_TEMPLATE).render(
        app=app, workload=workload, marker=INIT_MARKER, request=WINDOW_REQUEST,

        load_modules=LOAD_MODULES.strip(), list_module_sections=LIST_MODULE_SECTIONS.strip(),
        meminfo=PRINT_MEMINFO)
