/* Exercises epoll, eventfd, futex and unix sockets; prints "ipc_demo: all checks passed". */
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHECK(cond, what) do { if (!(cond)) { perror(what); exit(1); } } while (0)

static int futex_word;

static void *waker(void *arg)
{
	(void)arg;
	usleep(10000);
	__atomic_store_n(&futex_word, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &futex_word, FUTEX_WAKE, 1, NULL, NULL, 0);
	return NULL;
}

int main(void)
{
	int ep = epoll_create1(0);
	CHECK(ep >= 0, "epoll_create1");

	int efd = eventfd(0, 0);
	CHECK(efd >= 0, "eventfd");
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = efd };
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0, "epoll_ctl eventfd");
	uint64_t one = 1;
	CHECK(write(efd, &one, sizeof one) == sizeof one, "eventfd write");
	struct epoll_event out;
	CHECK(epoll_wait(ep, &out, 1, 1000) == 1 && out.data.fd == efd, "epoll_wait eventfd");

	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	ev.data.fd = sv[1];
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev) == 0, "epoll_ctl socket");
	CHECK(write(sv[0], "ping", 4) == 4, "unix write");
	CHECK(epoll_wait(ep, &out, 1, 1000) == 1, "epoll_wait socket");
	char buf[8] = {0};
	CHECK(read(sv[1], buf, sizeof buf) == 4 && memcmp(buf, "ping", 4) == 0, "unix read");

	pthread_t t;
	CHECK(pthread_create(&t, NULL, waker, NULL) == 0, "pthread_create");
	while (__atomic_load_n(&futex_word, __ATOMIC_SEQ_CST) == 0)
		syscall(SYS_futex, &futex_word, FUTEX_WAIT, 0, NULL, NULL, 0);
	pthread_join(t, NULL);

	printf("ipc_demo: all checks passed\n");
	return 0;
}
