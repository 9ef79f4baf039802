/* A periodic job runner: one epoll loop over a timerfd (the schedule) and a signalfd (control).
 * Runs three ticks, then signals itself SIGUSR1 and handles it through the signalfd. Prints
 * "scheduler: 3 ticks, SIGUSR1 handled" when both worked. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define CHECK(cond, what) do { if (!(cond)) { perror(what); exit(1); } } while (0)

int main(void)
{
	struct itimerspec every = {.it_interval = {0, 20000000}, .it_value = {0, 20000000}};
	struct epoll_event ev = {.events = EPOLLIN}, out;
	struct signalfd_siginfo info;
	int ep, tfd, sfd, ticks = 0, handled = 0;
	uint64_t expirations;
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	CHECK(sigprocmask(SIG_BLOCK, &mask, NULL) == 0, "sigprocmask");
	CHECK((sfd = signalfd(-1, &mask, 0)) >= 0, "signalfd");
	CHECK((tfd = timerfd_create(CLOCK_MONOTONIC, 0)) >= 0, "timerfd_create");
	CHECK(timerfd_settime(tfd, 0, &every, NULL) == 0, "timerfd_settime");
	CHECK((ep = epoll_create1(0)) >= 0, "epoll_create1");
	ev.data.fd = tfd;
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) == 0, "epoll_ctl timerfd");
	ev.data.fd = sfd;
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) == 0, "epoll_ctl signalfd");
	while (!handled) {
		CHECK(epoll_wait(ep, &out, 1, 5000) == 1, "epoll_wait");
		if (out.data.fd == tfd) {
			CHECK(read(tfd, &expirations, sizeof expirations) == sizeof expirations, "read timerfd");
			if (++ticks == 3)
				CHECK(kill(getpid(), SIGUSR1) == 0, "kill");
		} else {
			CHECK(read(sfd, &info, sizeof info) == sizeof info, "read signalfd");
			handled = info.ssi_signo == SIGUSR1;
		}
	}
	printf("scheduler: %d ticks, SIGUSR1 handled\n", ticks);
	return 0;
}
