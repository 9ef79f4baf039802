/* Marks a point in an instruction trace (the start of user space in a boot, the start or the end
 * of an application window; the addresses and program paths are MARKER_PROGRAMS of
 * domain/guest/protocol.py, read back by domain/trace/log.py): maps one page at the fixed user
 * address MARKER_ADDRESS (-D from protocol.marker_define), writes a `ret` there and calls it, so
 * QEMU's log shows a block at exactly that address. No libc: built with -static -nostdlib. */
#define SYS_mmap 9
#define SYS_exit 60

static long syscall6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

void __attribute__((noreturn)) _start(void)
{
	/* PROT_READ|PROT_WRITE|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED */
	long page = syscall6(SYS_mmap, MARKER_ADDRESS, 4096, 7, 0x32, -1, 0);
	int status = 1;
	if (page == MARKER_ADDRESS) {
		*(volatile unsigned char *)page = 0xc3; /* ret */
		((void (*)(void))page)();
		status = 0;
	}
	syscall6(SYS_exit, status, 0, 0, 0, 0, 0);
	for (;;)
		;
}
