#define _GNU_SOURCE
#include "agentos_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

// What the child tells the parent. With CLONE_VM the child writes it
// straight into the parent's memory; CLONE_VFORK keeps the parent suspended
// until the child has exec'd or exited, so it is read only afterwards.
struct aos_child_context {
    const aos_spawn_request *req;
    pid_t parent;
    volatile int stage;
    volatile int error;
};

// Runs in the child, on its own stack, sharing the parent's memory: raw,
// async-signal-safe calls only, no allocation, nothing written but the
// context; never returns.
static int aos_child(void *opaque) {
    struct aos_child_context *ctx = opaque;
    const aos_spawn_request *req = ctx->req;

    // Signal state: default dispositions (an ignored SIGPIPE would survive
    // exec otherwise), then an empty mask (the parent blocked everything
    // around clone so no handler of the parent's runs here).
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < _NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        (void)sigaction(sig, &dfl, NULL);  // EINVAL for glibc-internal signals: fine
    }
    sigset_t empty;
    sigemptyset(&empty);
    if (sigprocmask(SIG_SETMASK, &empty, NULL) != 0) { ctx->stage = AOS_STAGE_SIGNALS; goto fail; }

    if (req->pdeath_signal != 0) {
        if (prctl(PR_SET_PDEATHSIG, req->pdeath_signal, 0, 0, 0) != 0) { ctx->stage = AOS_STAGE_PDEATHSIG; goto fail; }
        // The parent may have died between clone and prctl.
        if (getppid() != ctx->parent) _exit(127);
    }
    if (req->new_session && setsid() < 0) { ctx->stage = AOS_STAGE_SETSID; goto fail; }

    // Join the agent's cgroups before exec, so the program and everything it
    // starts are inside them from the first instruction ("0" = this process).
    for (int i = 0; i < req->cgroup_procs_count; i++) {
        if (write(req->cgroup_procs_fds[i], "0", 1) != 1) { ctx->stage = AOS_STAGE_CGROUP; goto fail; }
    }

    // Move every source fd above the targets first, so that placing one
    // never clobbers another that is still to be placed.
    const int floor_fd = 16;
    int sources[3 + AOS_MAX_EXTRA_FDS] = {req->stdin_fd, req->stdout_fd, req->stderr_fd};
    int targets[3 + AOS_MAX_EXTRA_FDS] = {0, 1, 2};
    int moved[3 + AOS_MAX_EXTRA_FDS];
    int count = 3;
    for (int i = 0; i < req->extra_fd_count && i < AOS_MAX_EXTRA_FDS; i++) {
        sources[count] = req->extra_fds[i];
        targets[count++] = req->extra_fd_targets[i];
    }
    for (int i = 0; i < count; i++) {
        moved[i] = fcntl(sources[i], F_DUPFD_CLOEXEC, floor_fd);
        if (moved[i] < 0) { ctx->stage = AOS_STAGE_FDS; goto fail; }
    }
    int max_target = 2;
    for (int i = 0; i < count; i++) {
        if (dup2(moved[i], targets[i]) < 0) { ctx->stage = AOS_STAGE_FDS; goto fail; }
        if (targets[i] > max_target) max_target = targets[i];
    }
    // Close everything else (this process has its own fd table: no
    // CLONE_FILES): the gaps between the targets, then all above them.
    for (int fd = 3; fd < max_target; fd++) {
        int is_target = 0;
        for (int i = 0; i < count; i++) if (targets[i] == fd) is_target = 1;
        if (!is_target) (void)close(fd);
    }
    if (syscall(SYS_close_range, (unsigned int)max_target + 1, ~0U, 0) != 0) {
        for (int fd = max_target + 1; fd < 65536; fd++) (void)close(fd);
    }

    if (req->cwd != NULL && chdir(req->cwd) != 0) { ctx->stage = AOS_STAGE_CHDIR; goto fail; }

    execve(req->path, req->argv, req->envp);
    ctx->stage = AOS_STAGE_EXEC;

fail:
    ctx->error = errno;
    _exit(127);
}

enum { AOS_CHILD_STACK_SIZE = 256 * 1024 };

int aos_spawn(const aos_spawn_request *req, aos_spawn_result *result) {
    memset(result, 0, sizeof *result);
    result->pidfd = -1;
    result->pid = -1;

    // The child shares our memory (CLONE_VM, as posix_spawn does): no copy
    // of the kernel's page tables, whatever its size. It needs a stack of
    // its own; we stay suspended (CLONE_VFORK) until it execs or exits.
    void *stack = mmap(NULL, AOS_CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        result->error = errno;
        result->stage = AOS_STAGE_CLONE;
        return -1;
    }

    struct aos_child_context ctx = {.req = req, .parent = getpid(), .stage = AOS_STAGE_NONE, .error = 0};
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);

    int pidfd = -1;
    pid_t pid = clone(aos_child, (char *)stack + AOS_CHILD_STACK_SIZE,
                      CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &ctx, &pidfd);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    munmap(stack, AOS_CHILD_STACK_SIZE);

    if (pid < 0) {
        result->error = clone_errno;
        result->stage = AOS_STAGE_CLONE;
        return -1;
    }
    if (ctx.stage != AOS_STAGE_NONE) {
        int status;
        while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {}
        close(pidfd);
        result->error = ctx.error;
        result->stage = (aos_spawn_stage)ctx.stage;
        return -1;
    }
    result->pid = pid;
    result->pidfd = pidfd;
    return 0;
}

int aos_pidfd_wait(int pidfd, int nohang, int *exited, int *status, int *core_dumped) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int options = WEXITED | (nohang ? WNOHANG : 0);
    int rc;
    do {
        rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, options);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) return errno;
    if (info.si_pid == 0) return EAGAIN;  // WNOHANG and still running
    *exited = info.si_code == CLD_EXITED;
    *status = info.si_status;
    *core_dumped = info.si_code == CLD_DUMPED;
    return 0;
}

int aos_pidfd_signal(int pidfd, int signal) {
    if (syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0) != 0) return errno;
    return 0;
}

int aos_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return errno;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int aos_user_in_group(uid_t uid, gid_t gid) {
    // Called from ordinary threads (never between clone and exec): the
    // allocating libc calls are fine here.
    struct passwd pw, *found = NULL;
    char buffer[4096];
    if (getpwuid_r(uid, &pw, buffer, sizeof buffer, &found) != 0 || found == NULL) return -1;
    if (pw.pw_gid == gid) return 1;
    int ngroups = 64;
    for (int attempt = 0; attempt < 4; attempt++) {
        gid_t *groups = malloc(sizeof(gid_t) * (size_t)ngroups);
        if (groups == NULL) return -1;
        int n = ngroups;
        if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) >= 0) {
            int member = 0;
            for (int i = 0; i < n; i++) {
                if (groups[i] == gid) { member = 1; break; }
            }
            free(groups);
            return member;
        }
        free(groups);
        ngroups = n > ngroups ? n : ngroups * 2;
    }
    return -1;
}

void aos_unblock_termination_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif

int aos_landlock_abi(void) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1UL /* LANDLOCK_CREATE_RULESET_VERSION */);
    return abi > 0 ? (int)abi : 0;
}
