/* Sums numbers. With --timer (a path the traced workload does not take) it also arms a timerfd
 * and waits for it to fire. Prints "timer_demo: done" when every step it took worked. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int timer_path(void)
{
	struct itimerspec when = {.it_value = {.tv_sec = 0, .tv_nsec = 1000000}};
	uint64_t fired = 0;
	int fd = timerfd_create(CLOCK_MONOTONIC, 0);

	if (fd < 0) {
		printf("timer_demo: timerfd_create: %s\n", strerror(errno));
		return 1;
	}
	if (timerfd_settime(fd, 0, &when, NULL) < 0 || read(fd, &fired, sizeof fired) != sizeof fired) {
		printf("timer_demo: timerfd: %s\n", strerror(errno));
		return 1;
	}
	printf("timer_demo: timerfd fired %llu time(s)\n", (unsigned long long)fired);
	return close(fd);
}

int main(int argc, char **argv)
{
	long sum = 0;

	for (int i = 1; i <= 100; i++)
		sum += i;
	printf("timer_demo: sum %ld\n", sum);
	if (argc > 1 && strcmp(argv[1], "--timer") == 0 && timer_path() != 0)
		return 1;
	printf("timer_demo: done\n");
	return 0;
}
