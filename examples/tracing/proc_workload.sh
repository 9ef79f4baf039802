cat /proc/meminfo
cat /proc/self/status > /dev/null
ls /proc/1/ > /dev/null
