/* Watches a spool directory with inotify while a child drops two files into it, and holds an
 * exclusive flock on the directory's lock file meanwhile. Prints "watcher: 2 files seen, lock
 * held" when both events arrived and a second lock attempt was refused. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond, what) do { if (!(cond)) { perror(what); exit(1); } } while (0)

static void drop(const char *dir, const char *name)
{
	char path[256];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	CHECK((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0, "open spool file");
	CHECK(write(fd, name, strlen(name)) > 0 && close(fd) == 0, "write spool file");
}

int main(int argc, char **argv)
{
	char lock_path[256], events[4096] __attribute__((aligned(8)));
	int in, lock, other, seen = 0, status;
	pid_t child;

	CHECK(argc == 2, "usage: watcher DIR");
	snprintf(lock_path, sizeof lock_path, "%s/.lock", argv[1]);
	CHECK((lock = open(lock_path, O_RDWR | O_CREAT, 0644)) >= 0, "open lock");
	CHECK(flock(lock, LOCK_EX) == 0, "flock");
	CHECK((other = open(lock_path, O_RDWR)) >= 0, "open lock again");
	if (flock(other, LOCK_EX | LOCK_NB) == 0) {
		printf("watcher: a second exclusive lock was granted\n");
		return 1;
	}
	CHECK((in = inotify_init1(0)) >= 0, "inotify_init1");
	CHECK(inotify_add_watch(in, argv[1], IN_CLOSE_WRITE) >= 0, "inotify_add_watch");
	child = fork();
	CHECK(child >= 0, "fork");
	if (child == 0) {
		drop(argv[1], "job-1");
		drop(argv[1], "job-2");
		return 0;
	}
	while (seen < 2) {
		ssize_t n = read(in, events, sizeof events);
		char *p;

		CHECK(n > 0, "read inotify");
		for (p = events; p < events + n; p += sizeof(struct inotify_event) + ((struct inotify_event *)p)->len)
			if (!strncmp(((struct inotify_event *)p)->name, "job-", 4))
				seen++;
	}
	CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && !WEXITSTATUS(status), "child");
	printf("watcher: %d files seen, lock held\n", seen);
	return 0;
}
