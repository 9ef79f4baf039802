/* The syscall probe: runs in a kernel_rules guest as the workload of the probe image
 * (domain.guest.probe) and prints, on stdout, one line per x86-64 syscall number and one per
 * benchmark round. The line formats are those of domain.guest.protocol (PROBE_SYSCALL,
 * PROBE_BENCH, PROBE_DONE):
 *
 *   KR_PROBE_SYSCALL <nr> ret <value>      the call returned <value> (-errno on failure)
 *   KR_PROBE_SYSCALL <nr> signal <sig>     the child calling it died of signal <sig>
 *   KR_PROBE_SYSCALL <nr> exit <status>    the call ended the child (exit, exit_group)
 *   KR_PROBE_SYSCALL <nr> timeout          the call had not returned after CHILD_SECONDS
 *   KR_PROBE_BENCH <name> <round> <count> <nanoseconds>
 *   KR_PROBE_DONE
 *
 * Every number is called once, in a child of its own that left the session (setsid) and has an
 * alarm; the parent waits for it at most PARENT_SECONDS, polling (no alarm: kernels without
 * POSIX_TIMERS have none) and never makes a probed call itself. Arguments are all -1 (an
 * invalid pointer, descriptor, flag set and size) except for the calls in `special()`, where -1 means something
 * (kill(-1, ...) is every process) or where an implemented call answers ENOSYS to an unknown
 * operation (futex, modify_ldt). fork, vfork, clone and clone3 run through `raw_spawn`, whose new
 * process exits at once without touching memory.
 *
 * Benchmarks, timed with clock_gettime(CLOCK_MONOTONIC): `spin` (a user-space loop, the speed of
 * the CPU the guest gets: under TCG it follows the host's load), `getpid` (GETPID_CALLS raw
 * getpid syscalls) and `walk` (a walk over a tree of WALK_DIRS x WALK_FILES files created in
 * /tmp first: getdents64 and fstatat on every entry).
 *
 * Usage: syscall_probe <last syscall number> <benchmark rounds>
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHILD_SECONDS 1
#define PARENT_SECONDS 4
#define GETPID_CALLS 1000000L
#define SPIN_ITERATIONS 100000000L
#define WALK_DIRS 200
#define WALK_FILES 100
#define TREE "/tmp/kr-probe-tree"

static long raw_syscall(long nr, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

/* A process-creating call: in the new process (rax == 0) exit(0) at once, before any memory
 * (shared with the caller after vfork) is touched. */
static long raw_spawn(long nr, long a, long b, long c, long d, long e) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  long ret;
  __asm__ volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "mov $60, %%eax\n\t"
      "xor %%edi, %%edi\n\t"
      "syscall\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
      : "rcx", "r11", "memory");
  return ret;
}

static int futex_word;
static char ldt_buf[16];

/* The call of syscall `nr` in the child; its return value. */
static long call(long nr) {
  const long x = -1;
  switch (nr) {
    case SYS_clone:
    case SYS_clone3:
      return raw_spawn(nr, x, x, x, x, x);
    case SYS_fork:
    case SYS_vfork:
      return raw_spawn(nr, 0, 0, 0, 0, 0);
    case SYS_kill: /* no such process, signal 0: nothing is sent */
      return raw_syscall(nr, 0x7fffffff, 0, 0, 0, 0, 0);
    case SYS_futex: /* an unknown futex op is ENOSYS: wake nobody on a private word instead */
      return raw_syscall(nr, (long)&futex_word, 1 /* FUTEX_WAKE */ | 128 /* PRIVATE */, 1, 0,
                         0, 0);
    case SYS_modify_ldt: /* an unknown func is ENOSYS: read 0 bytes instead */
      return raw_syscall(nr, 0, (long)ldt_buf, 0, 0, 0, 0);
    case SYS_msgget: /* -1 flags would create a queue */
    case SYS_semget:
    case SYS_shmget:
      return raw_syscall(nr, 0x7eadbeef, nr == SYS_semget ? 1 : 0, 0, 0, 0, 0);
    default:
      return raw_syscall(nr, x, x, x, x, x, x);
  }
}

static volatile long *results; /* shared with the children: [2 * nr] state, [2 * nr + 1] value */

static void on_alarm(int sig) { (void)sig; }

/* waitpid with a deadline that needs no alarm: a kernel without POSIX_TIMERS has no alarm(2)
 * (the child's alarm is then ENOSYS too, and a blocking call such as pause never returns), but
 * nanosleep always works. Polls from 0.1 ms, doubling up to 10 ms. */
static pid_t wait_at_most(pid_t pid, int *status, int seconds) {
  long long waited_ns = 0, step_ns = 100000;
  for (;;) {
    pid_t got = waitpid(pid, status, WNOHANG);
    if (got != 0 || waited_ns >= seconds * 1000000000LL) return got;
    struct timespec ts = {0, step_ns};
    nanosleep(&ts, NULL);
    waited_ns += step_ns;
    if (step_ns < 10000000) step_ns *= 2;
  }
}

static void probe(long nr) {
  results[2 * nr] = 0;
  pid_t pid = fork();
  if (pid < 0) {
    printf("KR_PROBE_SYSCALL %ld signal 0\n", nr);
    return;
  }
  if (pid == 0) {
    setsid();
    alarm(CHILD_SECONDS);
    results[2 * nr] = 1;
    long ret = call(nr);
    results[2 * nr + 1] = ret;
    results[2 * nr] = 2;
    _exit(0);
  }
  int status = 0;
  pid_t got = wait_at_most(pid, &status, PARENT_SECONDS);
  if (got != pid) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    printf("KR_PROBE_SYSCALL %ld timeout\n", nr);
  } else if (results[2 * nr] == 2) {
    printf("KR_PROBE_SYSCALL %ld ret %ld\n", nr, results[2 * nr + 1]);
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
    printf("KR_PROBE_SYSCALL %ld timeout\n", nr);
  } else if (WIFSIGNALED(status)) {
    printf("KR_PROBE_SYSCALL %ld signal %d\n", nr, WTERMSIG(status));
  } else {
    printf("KR_PROBE_SYSCALL %ld exit %d\n", nr, WEXITSTATUS(status));
  }
  fflush(stdout);
}

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void bench(const char *name, int round, long count, long long ns) {
  printf("KR_PROBE_BENCH %s %d %ld %lld\n", name, round, count, ns);
  fflush(stdout);
}

static int make_tree(void) {
  char path[256];
  mkdir(TREE, 0755);
  for (int d = 0; d < WALK_DIRS; d++) {
    snprintf(path, sizeof path, TREE "/d%03d", d);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
    for (int f = 0; f < WALK_FILES; f++) {
      snprintf(path, sizeof path, TREE "/d%03d/f%03d", d, f);
      int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
      if (fd < 0) return -1;
      close(fd);
    }
  }
  return 0;
}

/* Entries below `dir` (an open directory descriptor), each stat'ed; -1 on an error. */
static long walk(int dir) {
  DIR *d = fdopendir(dir);
  if (!d) return -1;
  long n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      closedir(d);
      return -1;
    }
    n++;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY);
      long m = sub < 0 ? -1 : walk(sub);
      if (m < 0) {
        closedir(d);
        return -1;
      }
      n += m;
    }
  }
  closedir(d);
  return n;
}

int main(int argc, char **argv) {
  long last = argc > 1 ? atol(argv[1]) : 450;
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm; /* no SA_RESTART: waitpid returns EINTR */
  sigaction(SIGALRM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  results = mmap(NULL, sizeof(long) * 2 * (last + 1), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (results == MAP_FAILED) {
    perror("syscall_probe: mmap");
    return 1;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long nr = 0; nr <= last; nr++) probe(nr);
  if (make_tree() != 0) {
    perror("syscall_probe: creating " TREE);
    return 1;
  }
  for (int r = 0; r < rounds; r++) {
    long long t0 = now_ns();
    for (volatile long i = 0; i < SPIN_ITERATIONS; i++) {
    }
    bench("spin", r, SPIN_ITERATIONS, now_ns() - t0);
    t0 = now_ns();
    for (long i = 0; i < GETPID_CALLS; i++) raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0);
    bench("getpid", r, GETPID_CALLS, now_ns() - t0);
    int dir = open(TREE, O_RDONLY | O_DIRECTORY);
    t0 = now_ns();
    long n = dir < 0 ? -1 : walk(dir);
    long long ns = now_ns() - t0;
    if (n < 0) {
      perror("syscall_probe: walking " TREE);
      return 1;
    }
    bench("walk", r, n, ns);
  }
  printf("KR_PROBE_DONE\n");
  return 0;
}
