/* A key-value server on a unix socket, served with poll(); a forked client stores three keys and
 * reads them back. Prints "kv: 3 keys stored and read back" when every answer was right. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond, what) do { if (!(cond)) { perror(what); exit(1); } } while (0)
#define KEYS 8

static char keys[KEYS][16], values[KEYS][16];

static void answer(int fd, char *line)
{
	char reply[40] = "missing\n";
	char *key = line + 4, *value = strchr(key, ' ');
	int i;

	if (value)
		*value++ = '\0';
	for (i = 0; i < KEYS && keys[i][0] && strcmp(keys[i], key); i++)
		;
	if (i == KEYS) {
		strcpy(reply, "full\n");
	} else if (!strncmp(line, "set ", 4) && value) {
		snprintf(keys[i], sizeof keys[i], "%.15s", key);
		snprintf(values[i], sizeof values[i], "%.15s", value);
		strcpy(reply, "ok\n");
	} else if (!strncmp(line, "get ", 4) && keys[i][0]) {
		snprintf(reply, sizeof reply, "%s\n", values[i]);
	}
	CHECK(write(fd, reply, strlen(reply)) > 0, "write reply");
}

static void serve(int listener)
{
	struct pollfd fds[2] = {{.fd = listener, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
	char line[64];

	for (;;) {
		CHECK(poll(fds, 2, 5000) > 0, "poll");
		if (fds[0].revents & POLLIN)
			CHECK((fds[1].fd = accept(listener, NULL, NULL)) >= 0, "accept");
		if (fds[1].fd >= 0 && fds[1].revents & (POLLIN | POLLHUP)) {
			ssize_t n = read(fds[1].fd, line, sizeof line - 1);
			if (n <= 0)
				return;
			line[n] = '\0';
			line[strcspn(line, "\n")] = '\0';
			answer(fds[1].fd, line);
		}
	}
}

static void ask(int fd, const char *request, const char *expected)
{
	char reply[40] = {0};

	CHECK(write(fd, request, strlen(request)) > 0, "write request");
	CHECK(read(fd, reply, sizeof reply - 1) > 0, "read reply");
	if (strcmp(reply, expected)) {
		printf("kv: %s -> %s, expected %s", request, reply, expected);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int listener, status;
	pid_t client;

	CHECK(argc == 2, "usage: kv SOCKET");
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", argv[1]);
	unlink(addr.sun_path);
	CHECK((listener = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0, "socket");
	CHECK(bind(listener, (struct sockaddr *)&addr, sizeof addr) == 0, "bind");
	CHECK(listen(listener, 4) == 0, "listen");
	client = fork();
	CHECK(client >= 0, "fork");
	if (client == 0) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0, "connect");
		ask(fd, "set a 1\n", "ok\n");
		ask(fd, "set b 2\n", "ok\n");
		ask(fd, "set c 3\n", "ok\n");
		ask(fd, "get b\n", "2\n");
		ask(fd, "get a\n", "1\n");
		ask(fd, "get c\n", "3\n");
		ask(fd, "get d\n", "missing\n");
		return 0;
	}
	serve(listener);
	CHECK(waitpid(client, &status, 0) == client, "waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return 1;
	printf("kv: 3 keys stored and read back\n");
	return 0;
}
