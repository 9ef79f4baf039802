/* Marks the start or the end of the application window in an instruction trace: maps one page at
 * the fixed user address MARKER_ADDRESS, writes a `ret` there and calls it, so QEMU's log shows a
 * block at exactly that address. No libc: built with -static -nostdlib.
 *
 * Built with STOP_PORT instead, it stops the virtual machine: it writes 1 ("guest panicked") to
 * the I/O port of QEMU's pvpanic device, which the tracer runs with `-action panic=pause`, so the
 * guest pauses at an exact instruction count until the tracer lets it go on. Exit status 2 when
 * the kernel refuses port access (CONFIG_X86_IOPL_IOPERM off). */
#define SYS_mmap 9
#define SYS_ioperm 173
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

#ifdef STOP_PORT
void __attribute__((noreturn)) _start(void)
{
	int status = 2;
	if (syscall6(SYS_ioperm, STOP_PORT, 1, 1, 0, 0, 0) == 0) {
		__asm__ volatile("outb %b0, %w1" : : "a"(1), "Nd"(STOP_PORT));
		status = 0;
	}
	syscall6(SYS_exit, status, 0, 0, 0, 0, 0);
	for (;;)
		;
}
#else
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
#endif
