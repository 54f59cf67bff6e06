// A hostile agent: `escape N` attempts escape case N of
// shared/conformance/escapes.md from inside its sandbox and prints one line:
// "ok" (the attempt succeeded), "errno NAME", or a case-specific word.
// Compiled with the system cc by the integration suite.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/keyctl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static void result(long rc) {
    if (rc >= 0) {
        puts("ok");
    } else {
        const char *name = strerrorname_np(errno);
        printf("errno %s\n", name ? name : "?");
    }
}

static long open_rc(const char *path, int flags) {
    int fd = open(path, flags, 0644);
    if (fd >= 0) close(fd);
    return fd;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int n = atoi(argv[1]);
    setvbuf(stdout, NULL, _IONBF, 0);
    switch (n) {
    case 1: result(open_rc("/escape-test", O_WRONLY | O_CREAT)); break;
    case 2: result(open_rc("/usr/escape-test", O_WRONLY | O_CREAT)); break;
    case 3: result(open_rc("/etc/shadow", O_RDONLY)); break;
    case 4: result(open_rc("/proc/1/root/etc/passwd", O_RDONLY)); break;
    case 5: result(mount("tmpfs", "/tmp", "tmpfs", 0, NULL)); break;
    case 6: result(umount2("/usr", MNT_DETACH)); break;
    case 7: result(mount(NULL, "/usr", NULL, MS_REMOUNT | MS_BIND, NULL)); break;
    case 8: result(chroot(".")); break;
    case 9: result(mknod("/tmp/escape-dev", S_IFCHR | 0666, makedev(1, 3))); break;
    case 10: {
        struct file_handle *handle = malloc(sizeof *handle + 128);
        handle->handle_bytes = 128;
        int mount_id;
        if (name_to_handle_at(AT_FDCWD, "/etc/passwd", handle, &mount_id, 0) < 0) { result(-1); break; }
        result(open_by_handle_at(AT_FDCWD, handle, O_RDONLY));
        break;
    }
    case 11: result(open_rc("/proc/sys/kernel/core_pattern", O_WRONLY)); break;
    case 12: result(open_rc("/sys/fs/cgroup/cgroup.procs", O_WRONLY)); break;
    case 13: {
        // A symlink and a ".." path from the writable work dir to a host
        // path that is not in the sandbox.
        if (symlink("/root", "escape-link") < 0 && errno != EEXIST) { result(-1); break; }
        long a = open_rc("escape-link/.bashrc", O_RDONLY);
        int saved = errno;
        long b = open_rc("../../../../../../root/.bashrc", O_RDONLY);
        if (a >= 0 || b >= 0) { puts("ok"); break; }
        errno = saved;
        result(-1);
        break;
    }
    case 14: {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        result(connect(fd, (struct sockaddr *)&address, sizeof address));
        break;
    }
    case 15: {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        strncpy(address.sun_path + 1, argv[2], sizeof address.sun_path - 2);
        result(connect(fd, (struct sockaddr *)&address, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(argv[2]))));
        break;
    }
    case 16: result(socket(AF_PACKET, SOCK_RAW, 0)); break;
    case 17: result(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)); break;
    case 18: result(socket(AF_VSOCK, SOCK_STREAM, 0)); break;
    case 19: {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct ifreq request;
        memset(&request, 0, sizeof request);
        strcpy(request.ifr_name, "lo");
        request.ifr_flags = IFF_UP;
        result(ioctl(fd, SIOCSIFFLAGS, &request));
        break;
    }
    case 21: result(kill(atoi(argv[2]), 0)); break;
    case 22: result(kill(-1, SIGTERM)); break;
    case 23: {
        pid_t child = fork();
        if (child == 0) { pause(); _exit(0); }
        long rc = ptrace(PTRACE_ATTACH, child, NULL, NULL);
        int saved = errno;
        kill(child, SIGKILL);
        errno = saved;
        result(rc);
        break;
    }
    case 24: {
        pid_t child = fork();
        if (child == 0) { pause(); _exit(0); }
        char buffer[16];
        struct iovec local = {buffer, sizeof buffer}, remote = {(void *)&main, sizeof buffer};
        long rc = process_vm_readv(child, &local, 1, &remote, 1, 0);
        int saved = errno;
        kill(child, SIGKILL);
        errno = saved;
        result(rc);
        break;
    }
    case 25: {
        char c = 'x';
        long a = ioctl(0, TIOCSTI, &c);
        int first = errno;
        long b = syscall(SYS_ioctl, 0, TIOCSTI | (1UL << 32), &c);
        int has_tty = open("/dev/tty", O_RDWR) >= 0;
        if (a >= 0 || b >= 0 || has_tty) { puts("ok"); break; }
        errno = first;
        result(-1);
        break;
    }
    case 26: result(setpriority(PRIO_PROCESS, 0, -20)); break;
    case 28: result(unshare(CLONE_NEWUSER)); break;
    case 29: result(unshare(CLONE_NEWNS)); break;
    case 30: {
        struct { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; } args;
        memset(&args, 0, sizeof args);
        args.flags = CLONE_NEWNS | CLONE_NEWUSER;
        args.exit_signal = SIGCHLD;
        long rc = syscall(SYS_clone3, &args, sizeof args);
        if (rc == 0) _exit(0);
        if (rc > 0) waitpid((pid_t)rc, NULL, 0);
        result(rc);
        break;
    }
    case 31: {
        int fd = open("/proc/1/ns/mnt", O_RDONLY);
        if (fd < 0) { result(-1); break; }
        result(setns(fd, CLONE_NEWNS));
        break;
    }
    case 33: {
        // All five capability sets must be empty.
        FILE *status = fopen("/proc/self/status", "r");
        char line[256];
        int nonzero = 0;
        while (fgets(line, sizeof line, status)) {
            if (strncmp(line, "Cap", 3) == 0 && !strstr(line, "0000000000000000")) nonzero = 1;
        }
        puts(nonzero ? "ok" : "errno EPERM");
        break;
    }
    case 34: {
        // Map host root into our namespace.
        int fd = open("/proc/self/uid_map", O_WRONLY);
        if (fd < 0) { result(-1); break; }
        result(write(fd, "0 0 1\n", 6));
        break;
    }
    case 35: { gid_t zero = 0; result(setgroups(1, &zero)); break; }
    case 36: result(prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0)); break;
    case 37: result(syscall(SYS_add_key, "user", "escape", "x", 1, KEY_SPEC_PROCESS_KEYRING)); break;
    case 38: {
        // Each must fail; print the first success, else the first errno.
        long calls[6];
        calls[0] = syscall(SYS_userfaultfd, 0);
        calls[1] = syscall(SYS_bpf, 0, NULL, 0);
        calls[2] = syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
        char params[120];
        memset(params, 0, sizeof params);
        calls[3] = syscall(SYS_io_uring_setup, 1, params);
        calls[4] = syscall(SYS_init_module, NULL, 0, "");
        calls[5] = syscall(SYS_kexec_load, 0, 0, NULL, 0);
        for (int i = 0; i < 6; i++) if (calls[i] >= 0) { printf("ok %d\n", i); return 0; }
        result(-1);
        break;
    }
    case 39: {
        long rc = personality(READ_IMPLIES_EXEC);
        result(rc < 0 ? -1 : (personality(0xffffffff) & READ_IMPLIES_EXEC) ? 0 : -1);
        break;
    }
    case 40: {
        // getpid through the x32 ABI (__X32_SYSCALL_BIT).
        long rc = syscall(39 | 0x40000000);
        result(rc);
        break;
    }
    case 43: {
        struct rlimit limit;
        getrlimit(RLIMIT_NOFILE, &limit);
        printf("nofile %lu\n", (unsigned long)limit.rlim_max);
        break;
    }
    case 45: {
        int fd = open("/tmp/fill", O_WRONLY | O_CREAT, 0600);
        static char block[1 << 16];
        ssize_t w;
        do { w = write(fd, block, sizeof block); } while (w > 0);
        result(-1);
        break;
    }
    case 46: {
        int count = 0;
        for (int fd = 0; fd < 1024; fd++) if (fcntl(fd, F_GETFD) >= 0) count++;
        printf("fds %d\n", count);
        break;
    }
    case 47: result(shmget(atoi(argv[2]), 0, 0)); break;
    case 48: result(sethostname("escaped", 7)); break;
    default: puts("unknown case"); return 2;
    }
    return 0;
}
