// C shim for Agent OS: the code that runs between clone and exec (where
// only async-signal-safe calls are allowed in a multi-threaded process),
// and the Linux calls that Swift's Glibc overlay does not expose cleanly.
// Every public symbol is prefixed aos_.
#ifndef AGENTOS_SHIM_H
#define AGENTOS_SHIM_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Where a spawn failed; reported with the errno through the exec pipe.
typedef enum {
    AOS_STAGE_NONE = 0,
    AOS_STAGE_PIPE = 1,
    AOS_STAGE_CLONE = 2,
    AOS_STAGE_SIGNALS = 3,
    AOS_STAGE_PDEATHSIG = 4,
    AOS_STAGE_SETSID = 5,
    AOS_STAGE_FDS = 6,
    AOS_STAGE_CHDIR = 7,
    AOS_STAGE_EXEC = 8,
    AOS_STAGE_CGROUP = 9,
} aos_spawn_stage;

enum { AOS_MAX_EXTRA_FDS = 8 };

/// Everything the child needs, prepared by the parent before clone (the
/// child must not allocate). Strings and arrays stay owned by the caller.
typedef struct {
    const char *path;           // absolute path of the program
    char *const *argv;          // NULL-terminated
    char *const *envp;          // NULL-terminated
    const char *cwd;            // NULL: inherit
    int stdin_fd;               // placed at 0
    int stdout_fd;              // placed at 1
    int stderr_fd;              // placed at 2
    const int *extra_fds;       // more fds (the protocol socket, the sandbox's pipes) ...
    const int *extra_fd_targets;  // ... each placed at its target (above 2, distinct)
    int extra_fd_count;         // at most AOS_MAX_EXTRA_FDS
    int pdeath_signal;          // 0: none
    int new_session;            // non-zero: setsid() (own session and process group, no ctty)
    const int *cgroup_procs_fds;  // cgroup.procs files (opened by the parent) the child joins before exec
    int cgroup_procs_count;
} aos_spawn_request;

typedef struct {
    pid_t pid;
    int pidfd;                  // CLOEXEC; the caller owns it
    int error;                  // errno when the call returned -1
    aos_spawn_stage stage;
} aos_spawn_result;

/// Starts `req->path` in a new process. Returns 0 once the child has
/// exec'd, or -1 with result->error/stage set (the child is reaped).
int aos_spawn(const aos_spawn_request *req, aos_spawn_result *result);

/// Waits for (reaps) the child behind `pidfd`. Returns 0 and sets exited
/// (1: exit(status), 0: killed by signal status) or an errno.
int aos_pidfd_wait(int pidfd, int nohang, int *exited, int *status, int *core_dumped);

/// pidfd_send_signal(2); returns 0 or an errno.
int aos_pidfd_signal(int pidfd, int signal);

/// The peer of a connected Unix socket (SO_PEERCRED); returns 0 or an errno.
int aos_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/// Layout of struct ucred, for reading SO_PEERCRED through SwiftNIO.
typedef struct {
    pid_t pid;
    uid_t uid;
    gid_t gid;
} aos_ucred;

/// Whether `uid` is `gid`'s member (primary or supplementary). 1, 0, or -1
/// when the user is unknown.
int aos_user_in_group(uid_t uid, gid_t gid);

/// Unblocks SIGTERM, SIGINT, SIGHUP and SIGQUIT for the calling thread (call
/// first thing in main, before other threads exist, so they inherit it):
/// a parent that spawned us with them blocked must not make us unkillable.
void aos_unblock_termination_signals(void);

/// The Landlock ABI version the running kernel offers, or 0 without Landlock.
int aos_landlock_abi(void);

/// Descriptor makers, all CLOEXEC. Return the fd (or 0 for the pairs) or -errno.
int aos_epoll_create(void);
int aos_eventfd(void);
int aos_pipe(int fds[2]);
int aos_socketpair(int fds[2]);
/// Grows a pipe to hold `bytes` (F_SETPIPE_SZ); returns its new size or -errno.
int aos_pipe_set_size(int fd, int bytes);

/// epoll with a 64-bit token per fd (Swift imports the packed
/// struct epoll_event awkwardly). Return 0 or an errno / the event count.
int aos_epoll_add(int epfd, int fd, uint64_t token);
int aos_epoll_remove(int epfd, int fd);
/// Waits for readiness; fills up to `max` tokens; returns the count or -errno.
int aos_epoll_wait(int epfd, uint64_t *tokens, int max, int timeout_ms);

/// The calling thread's CPU affinity as a bit mask of CPUs 0-63 (a
/// process inherits it from the thread that starts it). Return 0 or -errno.
int aos_thread_cpus(uint64_t *mask);
int aos_thread_set_cpus(uint64_t mask);

#ifdef __cplusplus
}
#endif
#endif
