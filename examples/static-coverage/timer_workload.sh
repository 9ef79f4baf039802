# The timerfd path runs only when the kernel command line asks for it (the traced runs do not).
if grep -q kr_timer_path /proc/cmdline; then
	timer_demo --timer
else
	timer_demo
fi
