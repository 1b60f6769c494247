/*
 * no_uring.c: run a program on a kernel that "has no io_uring".
 *
 *   no_uring PROGRAM [ARGS...]   install the filter, then exec PROGRAM
 *   no_uring --check             install the filter and prove it works
 *
 * Containers and hardened hosts often forbid io_uring with a seccomp
 * profile (Docker's default does) or kernel.io_uring_disabled=2; the server
 * must then fail fast with one clear line instead of misbehaving. This
 * wrapper recreates that situation for a single process tree: it installs
 * a seccomp BPF filter that makes io_uring_setup, io_uring_enter and
 * io_uring_register fail with EPERM and allows every other system call,
 * then execs its arguments. The filter survives execve and is inherited by
 * threads and children; PR_SET_NO_NEW_PRIVS (required to install a filter
 * without CAP_SYS_ADMIN) also survives, which is harmless here.
 *
 * The filter, in classic BPF over struct seccomp_data:
 *
 *   ld  arch                     ; the ABI the call was made with
 *   jne AUDIT_ARCH_<this>, allow ; another ABI (e.g. i386 on x86_64):
 *                                ; not ours to police, the server is native
 *   ld  nr
 *   jeq io_uring_setup,    eperm
 *   jeq io_uring_enter,    eperm
 *   jeq io_uring_register, eperm
 *   jeq x32|io_uring_setup, eperm    ; and enter, register: on x86_64 the
 *                                    ; x32 ABI shares the arch value and
 *                                    ; sets bit 30 in nr
 *   allow: ret SECCOMP_RET_ALLOW
 *   eperm: ret SECCOMP_RET_ERRNO | EPERM
 *
 * Exit status: the program's (after exec); 127 when exec fails; with
 * --check 0 when io_uring calls fail with EPERM and others still work, 1
 * when not; 77 (skip) when the kernel refuses seccomp filters.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define NATIVE_ARCH AUDIT_ARCH_RISCV64
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
#define NATIVE_ARCH AUDIT_ARCH_PPC64LE
#elif defined(__s390x__)
#define NATIVE_ARCH AUDIT_ARCH_S390X
#else
#error "no_uring: add this architecture's AUDIT_ARCH_* value"
#endif

/* io_uring has the same numbers on every architecture (the unified table
 * since Linux 5.1); older headers may lack the names. */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

#define X32_SYSCALL_BIT 0x40000000u
#define SKIP 77

static int install_filter(void)
{
    /* Jump offsets count from the next instruction. */
    struct sock_filter code[] = {
        /* [0] */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        /* [1] */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 0, 7), /* no: [9] */
        /* [2] */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* [3] */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 6, 0),
        /* [4] */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 5, 0),
        /* [5] */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 4, 0),
        /* [6] */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, X32_SYSCALL_BIT | __NR_io_uring_setup, 3, 0),
        /* [7] */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, X32_SYSCALL_BIT | __NR_io_uring_enter, 2, 0),
        /* [8] */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, X32_SYSCALL_BIT | __NR_io_uring_register, 1, 0),
        /* [9] */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* [10] */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    };
    struct sock_fprog prog = {.len = (unsigned short)(sizeof(code) / sizeof(code[0])),
                              .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return -errno;
    return 0;
}

/* Proves the filter: each io_uring call fails with EPERM (not ENOSYS, not
 * EFAULT: the filter answers before the kernel looks at the arguments),
 * and an ordinary call still works. */
static int check(void)
{
    static const struct {
        const char *name;
        long nr;
    } calls[] = {{"io_uring_setup", __NR_io_uring_setup},
                 {"io_uring_enter", __NR_io_uring_enter},
                 {"io_uring_register", __NR_io_uring_register}};
    int failures = 0;
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        errno = 0;
        long rc = syscall(calls[i].nr, 0, 0, 0, 0, 0, 0);
        int err = errno;
        if (rc != -1 || err != EPERM) {
            fprintf(stderr, "no_uring: %s returned %ld errno %d (%s), want EPERM\n",
                    calls[i].name, rc, err, strerror(err));
            failures++;
        } else {
            printf("no_uring: %s -> EPERM\n", calls[i].name);
        }
    }
    if (syscall(SYS_getpid) != getpid()) {
        fprintf(stderr, "no_uring: getpid no longer works under the filter\n");
        failures++;
    }
    return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: no_uring PROGRAM [ARGS...]\n"
                "       no_uring --check\n"
                "Runs PROGRAM with io_uring_setup/enter/register failing with EPERM.\n");
        return argc < 2 ? 2 : 0;
    }
    int rc = install_filter();
    if (rc != 0) {
        fprintf(stderr, "no_uring: cannot install the seccomp filter: %s\n", strerror(-rc));
        return rc == -EINVAL || rc == -ENOSYS ? SKIP : 1;
    }
    if (strcmp(argv[1], "--check") == 0)
        return check();
    execvp(argv[1], argv + 1);
    fprintf(stderr, "no_uring: exec %s: %s\n", argv[1], strerror(errno));
    return 127;
}
