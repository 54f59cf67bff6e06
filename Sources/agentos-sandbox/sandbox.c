// agentos-sandbox: the helper agentd execs first for every agent (the
// bubblewrap / nsjail model). Single-threaded C, so it may fork and set up
// namespaces freely; then it stays as the agent's monitor outside the
// sandbox, forwarding signals and reporting the agent's exit as its own.
//
//   agentos-sandbox --uid U --gid G --root DIR [--hostname H] [--workdir D]
//                   [--ro PATH]... [--rw PATH]... [--tmp-size BYTES]
//                   [--net none|loopback] [--nofile N] [--ready-fd FD]
//                   [--exec-fd FD] [--seccomp-bpf FILE] [--landlock ABI]
//                   [--ro-strict PATH]... [--rw-strict PATH]...
//                   [--program PATH]... [--program-link LINK=PATH]...
//                   [--stdio socket]
//                   [--env K=V]... -- PROGRAM [ARGS...]
//   agentos-sandbox --uid U --gid G --root DIR --ready-fd FD --exec-fd FD
//                   --request-fd FD
//
// --ro-strict/--rw-strict bind a path that agentd resolved itself (a tool
// run's file): no component may be a symlink when the helper opens it, so
// a link swapped in after agentd's check fails the start instead of
// leading elsewhere. --program (command line only) is the allowlist form
// of a tool run: the root then has the library dirs and /etc but no
// program dirs, only the programs named (--program-link: a name that
// leads to one); every writable place is noexec, and Landlock allows exec
// of those programs (and their ELF interpreters) alone.
//
// --stdio socket makes fd 3 (the kernel's connection) the agent's stdin and
// stdout too: a program that speaks a protocol on stdio (an MCP server)
// talks to the kernel that way; stderr stays its log.
//
// The second form is a held sandbox (agentd keeps a few ready): it does
// everything that does not depend on the agent (the namespaces, the uid
// maps, the root with the system dirs, /proc and /dev) and then waits for
// the rest on the request fd: a little-endian u32 length of the options
// block, a u32 length of the BPF filter, the options block (the options of
// the first form from --hostname on, each NUL-terminated, ending with
// "--", the program and its arguments) and the filter. End of file before
// a request: exit 0 without starting anything.
//
// A request with "--start later" (and no --env, no "--") arms the sandbox:
// it builds all of it (mounts, hostname, network, the agent's identity,
// Landlock, seccomp) and then, as the agent's user and under its filter,
// waits on the request fd for the start block: a u32 length and NUL-
// terminated strings, --env K=V entries, "--", the program and its
// arguments. Then it execs. End of file instead: exit 0. agentd arms the
// replacement of a supervised agent while that agent runs.
//
// Processes: this monitor (host pid namespace) -> init (pid 1 of the new
// pid namespace: reaps, forwards signals) -> the agent (pid 2).
// --ready-fd receives "ok\n" once the agent has exec'd, or one line
// "error ERRNO: ..." if the sandbox could not be built (then it is closed);
// after "ok", "exit STATUS\n" (the agent's wait status) as soon as init
// reports it, before the namespaces are torn down and this monitor exits.
// With --exec-fd the agent itself tells, two process hops sooner: that fd
// is held by the agent alone and closed by its exec (end of file: it runs),
// or it gets the "error" line of the agent's own setup; --ready-fd then
// carries only errors of the sandbox's setup and the exit report.
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define MAX_BINDS 64
// How long init outlives a reported exit at most (see run_init; the
// kernel's Lifecycle.sandboxInitLinger says the same).
#define INIT_LINGER_MILLISECONDS 100
#define MAX_PROGRAMS 64

struct bind { const char *path; int writable; int strict; };

static struct {
    uid_t uid;
    gid_t gid;
    const char *root;
    const char *hostname;
    const char *workdir;
    struct bind binds[MAX_BINDS];
    int bind_count;
    const char *programs[MAX_PROGRAMS];
    int program_count;
    const char *program_links[MAX_PROGRAMS];   // LINK=PATH
    int program_link_count;
    unsigned long long tmp_size;
    int loopback;
    unsigned long nofile;
    int ready_fd;
    const char *seccomp_path;
    int landlock_abi;
    int request_fd;
    int exec_fd;
    int stdio_socket;  // --stdio socket
    int start_later;   // --start later: the program comes in a second block
    char **envp;      // --env entries; NULL: the helper's own environment
    int env_count;
    char **argv;
} cfg = {.uid = (uid_t)-1, .gid = (gid_t)-1, .tmp_size = 64ULL << 20, .nofile = 1024, .ready_fd = -1,
         .request_fd = -1, .exec_fd = -1};

// The harmless devices every sandbox's /dev has (and the only ones writable).
static const char *const devices[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", NULL};

// Where setup errors go (the ready fd, else stderr).
static int error_fd = -1;

// The compiled seccomp filter, read before any namespace is entered.
static struct sock_filter *seccomp_filter;
static unsigned short seccomp_length;

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *format, ...) {
    char message[512];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(message, sizeof message, format, args);
    va_end(args);
    if (n < 0) n = 0;
    if (n > (int)sizeof message - 1) n = sizeof message - 1;
    char line[600];
    // "error ERRNO: what: why" - the number lets agentd classify the failure.
    int code = errno;
    int length = snprintf(line, sizeof line, "error %d: %.*s: %s\n", code, n, message, strerror(code));
    if (write(error_fd >= 0 ? error_fd : 2, line, (size_t)length) < 0) { /* nothing left to tell */ }
    _exit(126);
}

static void usage(const char *problem) {
    // On the ready fd too, when it is known: agentd learns why at once.
    if (cfg.ready_fd >= 0) dprintf(cfg.ready_fd, "error %d: usage: %s\n", EINVAL, problem);
    fprintf(stderr, "agentos-sandbox: %s\n", problem);
    _exit(125);
}

// The options a held sandbox's request may carry: what depends on the
// agent. Its identity (uid, gid), the root and the fds are fixed when the
// helper starts and cannot be changed by a request.
static int request_option(const char *option) {
    static const char *const allowed[] = {"--hostname", "--workdir", "--ro", "--rw", "--ro-strict", "--rw-strict",
                                          "--tmp-size", "--net", "--nofile", "--landlock", "--env", "--stdio",
                                          "--start", NULL};
    for (int i = 0; allowed[i]; i++) if (strcmp(option, allowed[i]) == 0) return 1;
    return 0;
}

// Where options come from: they decide which ones are allowed.
enum option_source { FROM_COMMAND_LINE, FROM_REQUEST, FROM_START_BLOCK };

// Options that may be given more than once.
static int repeatable_option(const char *option) {
    static const char *const repeatable[] = {"--ro", "--rw", "--ro-strict", "--rw-strict", "--env", "--program",
                                             "--program-link", NULL};
    for (int i = 0; repeatable[i]; i++) if (strcmp(option, repeatable[i]) == 0) return 1;
    return 0;
}

// Options (a command line's, a request's or a start block's) into cfg.
// Returns the problem, or NULL. `strings` stay referenced: they must outlive
// the sandbox setup. No option but --ro, --rw and --env may come twice.
static const char *parse_options(int count, char **strings, enum option_source source) {
    const char *seen[64];
    int seen_count = 0;
    for (int i = 0; i < count; i++) {
        const char *a = strings[i];
        const char *v = i + 1 < count ? strings[i + 1] : NULL;
        if (strcmp(a, "--") == 0) { cfg.argv = &strings[i + 1]; break; }
        if (v == NULL) return "option without a value";
        if (source == FROM_REQUEST && !request_option(a)) return "an option a request may not carry";
        // The sandbox is built: only what the exec takes may come now.
        if (source == FROM_START_BLOCK && strcmp(a, "--env") != 0) return "an option a start block may not carry";
        if (!repeatable_option(a)) {
            for (int j = 0; j < seen_count; j++) if (strcmp(seen[j], a) == 0) return "an option given twice";
            if (seen_count < 64) seen[seen_count++] = a;
        }
        if (strcmp(a, "--uid") == 0) cfg.uid = (uid_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--gid") == 0) cfg.gid = (gid_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--root") == 0) cfg.root = v;
        else if (strcmp(a, "--hostname") == 0) cfg.hostname = v;
        else if (strcmp(a, "--workdir") == 0) cfg.workdir = v;
        else if (strcmp(a, "--ro") == 0 || strcmp(a, "--rw") == 0 || strcmp(a, "--ro-strict") == 0 ||
                 strcmp(a, "--rw-strict") == 0) {
            if (cfg.bind_count == MAX_BINDS) return "too many --ro/--rw paths";
            if (v[0] != '/') return "a --ro/--rw path must be absolute";
            cfg.binds[cfg.bind_count++] = (struct bind){v, a[3] == 'w', strlen(a) > 4};
        }
        else if (strcmp(a, "--program") == 0) {
            if (cfg.program_count == MAX_PROGRAMS) return "too many --program paths";
            if (v[0] != '/') return "a --program path must be absolute";
            cfg.programs[cfg.program_count++] = v;
        }
        else if (strcmp(a, "--program-link") == 0) {
            if (cfg.program_link_count == MAX_PROGRAMS) return "too many --program-link entries";
            if (v[0] != '/' || strchr(v, '=') == NULL || strchr(v, '=')[1] != '/') return "--program-link takes LINK=PATH, both absolute";
            cfg.program_links[cfg.program_link_count++] = v;
        }
        else if (strcmp(a, "--tmp-size") == 0) cfg.tmp_size = strtoull(v, NULL, 10);
        else if (strcmp(a, "--net") == 0) cfg.loopback = strcmp(v, "loopback") == 0;
        else if (strcmp(a, "--nofile") == 0) cfg.nofile = strtoul(v, NULL, 10);
        else if (strcmp(a, "--ready-fd") == 0) cfg.ready_fd = atoi(v);
        else if (strcmp(a, "--request-fd") == 0) cfg.request_fd = atoi(v);
        else if (strcmp(a, "--exec-fd") == 0) cfg.exec_fd = atoi(v);
        else if (strcmp(a, "--seccomp-bpf") == 0) cfg.seccomp_path = v;
        else if (strcmp(a, "--landlock") == 0) cfg.landlock_abi = atoi(v);
        else if (strcmp(a, "--stdio") == 0) {
            if (strcmp(v, "socket") != 0) return "--stdio takes socket";
            cfg.stdio_socket = 1;
        }
        else if (strcmp(a, "--start") == 0) {
            if (strcmp(v, "later") != 0) return "--start takes later";
            cfg.start_later = 1;
        }
        else if (strcmp(a, "--env") == 0) {
            if (cfg.envp == NULL) {
                // At most one entry per two strings, plus the NULL.
                cfg.envp = calloc((size_t)count / 2 + 1, sizeof(char *));
                if (cfg.envp == NULL) return "out of memory";
            }
            cfg.envp[cfg.env_count++] = (char *)v;
        }
        else return "unknown option";
        i++;
    }
    return NULL;
}

static void parse(int argc, char **argv) {
    const char *problem = parse_options(argc - 1, argv + 1, FROM_COMMAND_LINE);
    if (problem) usage(problem);
    if (cfg.request_fd < 0 && (cfg.argv == NULL || cfg.argv[0] == NULL)) usage("no program after --");
    if (cfg.request_fd >= 0 && (cfg.argv != NULL || cfg.ready_fd < 0 || cfg.exec_fd < 0))
        usage("--request-fd needs --ready-fd, --exec-fd and no program");
    // A held sandbox learns everything about its agent from the request.
    if (cfg.request_fd >= 0 && (cfg.hostname || cfg.workdir || cfg.bind_count || cfg.envp || cfg.seccomp_path ||
                                cfg.landlock_abi))
        usage("with --request-fd, the agent's options come in the request");
    // The root of a held sandbox has the program dirs already.
    if (cfg.request_fd >= 0 && (cfg.program_count || cfg.program_link_count)) usage("--program needs the cold form");
    if (cfg.program_link_count && !cfg.program_count) usage("--program-link needs --program");
    if (cfg.start_later) usage("--start later is for a held sandbox's request");
    // The exec fence is Landlock's: without it the allowlist would be the mounts alone.
    if (cfg.program_count && cfg.landlock_abi <= 0) usage("--program needs --landlock (the exec fence)");
    if (cfg.exec_fd >= 0 && cfg.ready_fd < 0) usage("--exec-fd needs --ready-fd");
    if (cfg.uid == 0 || cfg.uid == (uid_t)-1 || cfg.gid == 0 || cfg.gid == (gid_t)-1)
        usage("--uid and --gid must name an unprivileged user (never 0)");
    if (cfg.root == NULL) usage("--root is required");
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) die("open %s", path);
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die("write %s", path);
    close(fd);
}

// mkdir -p below the new root for `path` (absolute, as seen inside).
static void make_path(const char *root, const char *path, int is_file) {
    char full[4096];
    snprintf(full, sizeof full, "%s%s", root, path);
    for (char *p = full + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(full, 0755) < 0 && errno != EEXIST) die("mkdir %s", full);
            *p = '/';
        }
    }
    if (is_file) {
        // One there already (below a read-only bind, say) will do.
        struct stat st;
        if (lstat(full, &st) == 0) return;
        int fd = open(full, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST) die("create %s", full);
        if (fd >= 0) close(fd);
    } else if (mkdir(full, 0755) < 0 && errno != EEXIST) {
        die("mkdir %s", full);
    }
}

// In the allowlist form no bind of the agent's (its work dir, /tmp, its
// paths) may hold a program: nothing it wrote or could reach there can be
// exec'd or mapped executable. The system's library dirs keep exec.
static unsigned long agent_exec_flag(void) {
    return cfg.program_count ? MS_NOEXEC : 0;
}

// Bind `source` at the same path inside; read-only unless `writable`;
// `extra_flags` for the remount (MS_NOEXEC).
static void bind_path(const char *root, const char *source, int writable, int optional, unsigned long extra_flags) {
    struct stat st;
    if (stat(source, &st) < 0) {
        if (optional) return;
        die("%s", source);
    }
    make_path(root, source, !S_ISDIR(st.st_mode));
    char target[4096];
    snprintf(target, sizeof target, "%s%s", root, source);
    if (mount(source, target, NULL, MS_BIND | MS_REC, NULL) < 0) die("bind %s", source);
    unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (writable ? 0 : MS_RDONLY) | extra_flags;
    if (mount(NULL, target, NULL, flags, NULL) < 0) die("remount %s", source);
}

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#endif
struct agentos_open_how { uint64_t flags; uint64_t mode; uint64_t resolve; };

// Bind `source` (a path agentd resolved) without following any symlink on
// the way: the file opened is the file mounted, through its descriptor.
static void bind_strict(const char *root, const char *source, int writable, unsigned long extra_flags) {
    struct agentos_open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, source, &how, sizeof how);
    if (fd < 0) die("open %s (no part of it may be a symlink)", source);
    struct stat st;
    if (fstat(fd, &st) < 0) die("stat %s", source);
    make_path(root, source, !S_ISDIR(st.st_mode));
    char target[4096], via[64];
    snprintf(target, sizeof target, "%s%s", root, source);
    snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
    if (mount(via, target, NULL, MS_BIND | MS_REC, NULL) < 0) die("bind %s", source);
    close(fd);
    unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (writable ? 0 : MS_RDONLY) | extra_flags;
    if (mount(NULL, target, NULL, flags, NULL) < 0) die("remount %s", source);
}

// Host /bin, /lib, ... are symlinks on merged-usr systems: keep them so.
static void system_dir(const char *root, const char *path) {
    char link[256];
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n > 0) {
        link[n] = 0;
        char target[4096];
        snprintf(target, sizeof target, "%s%s", root, path);
        if (symlink(link, target) < 0 && errno != EEXIST) die("symlink %s", target);
        return;
    }
    bind_path(root, path, 0, 1, 0);
}

// What every sandbox has: the root with the system dirs, /proc and /dev.
static void setup_base_filesystem(void) {
    // Nothing we mount may propagate back to the host.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make / private");
    const char *root = cfg.root;
    if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m") < 0) die("mount root tmpfs");

    static const char *system_dirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", NULL};
    // The allowlist form: what programs load and read, but no program dir
    // (the named programs are bound one by one). /bin and /sbin stay the
    // symlinks they are on merged-usr hosts; a real one is left out.
    static const char *library_dirs[] = {"/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32", "/usr/share",
                                         "/lib", "/lib32", "/lib64", "/libx32", "/etc", NULL};
    if (cfg.program_count) {
        for (int i = 0; library_dirs[i]; i++) system_dir(root, library_dirs[i]);
        static const char *program_dirs[] = {"/bin", "/sbin", NULL};
        for (int i = 0; program_dirs[i]; i++) {
            char link[256];
            ssize_t n = readlink(program_dirs[i], link, sizeof link - 1);
            if (n <= 0) continue;
            link[n] = 0;
            char target[4096];
            snprintf(target, sizeof target, "%s%s", root, program_dirs[i]);
            if (symlink(link, target) < 0 && errno != EEXIST) die("symlink %s", target);
        }
    } else {
        for (int i = 0; system_dirs[i]; i++) system_dir(root, system_dirs[i]);
    }

    // /proc of the new pid namespace, mounted while the old root is still
    // attached (the kernel refuses it after the detach). The global knobs
    // in it (/proc/sys, sysrq-trigger, ...) are covered read-only; the rest
    // stays as the kernel guards it (e.g. a second write to uid_map: EPERM).
    char target[4096];
    snprintf(target, sizeof target, "%s/proc", root);
    mkdir(target, 0555);
    if (mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount /proc");
    static const char *proc_read_only[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs", NULL};
    for (int i = 0; proc_read_only[i]; i++) {
        snprintf(target, sizeof target, "%s%s", root, proc_read_only[i]);
        struct stat st;
        if (stat(target, &st) < 0) continue;
        if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) < 0) die("cover %s", proc_read_only[i]);
        if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            die("cover %s read-only", proc_read_only[i]);
    }

    // A minimal /dev: a few harmless devices bound from the host, no tty.
    snprintf(target, sizeof target, "%s/dev", root);
    mkdir(target, 0755);
    if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0) die("mount /dev");
    for (int i = 0; devices[i]; i++) {
        make_path(root, devices[i], 1);
        snprintf(target, sizeof target, "%s%s", root, devices[i]);
        if (mount(devices[i], target, NULL, MS_BIND, NULL) < 0) die("bind %s", devices[i]);
    }
    static const char *links[][2] = {{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
                                     {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}};
    for (int i = 0; i < 4; i++) {
        snprintf(target, sizeof target, "%s%s", root, links[i][1]);
        if (symlink(links[i][0], target) < 0) die("symlink %s", target);
    }
    snprintf(target, sizeof target, "%s/dev/shm", root);
    mkdir(target, 01777);
    if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=16m") < 0) die("mount /dev/shm");
    // /dev itself read-only once populated: nothing new appears in it (the
    // device binds and /dev/shm are mounts of their own and keep their flags).
    snprintf(target, sizeof target, "%s/dev", root);
    if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0)
        die("remount /dev read-only");
}

// What this agent has (/tmp of its size, its work dir and paths), then the
// switch to the new root.
static void finish_filesystem(void) {
    const char *root = cfg.root;
    char target[4096];
    // A size-capped /tmp.
    snprintf(target, sizeof target, "%s/tmp", root);
    mkdir(target, 01777);
    char options[64];
    snprintf(options, sizeof options, "mode=1777,size=%llu", cfg.tmp_size);
    if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | agent_exec_flag(), options) < 0) die("mount /tmp");

    if (cfg.workdir) bind_path(root, cfg.workdir, 1, 0, agent_exec_flag());
    for (int i = 0; i < cfg.bind_count; i++) {
        const struct bind *bind = &cfg.binds[i];
        if (bind->strict) bind_strict(root, bind->path, bind->writable, agent_exec_flag());
        else bind_path(root, bind->path, bind->writable, 0, agent_exec_flag());
    }
    // The allowlist's programs, each on its own, and the names leading to them.
    for (int i = 0; i < cfg.program_count; i++) bind_strict(root, cfg.programs[i], 0, 0);
    for (int i = 0; i < cfg.program_link_count; i++) {
        char link[4096];
        snprintf(link, sizeof link, "%s", cfg.program_links[i]);
        char *equals = strchr(link, '=');
        *equals = 0;
        char *slash = strrchr(link, '/');
        if (slash != link) {
            *slash = 0;
            make_path(root, link, 0);
            *slash = '/';
        }
        snprintf(target, sizeof target, "%s%s", root, link);
        if (symlink(equals + 1, target) < 0 && errno != EEXIST) die("symlink %s", link);
    }

    // The root itself read-only, then switch to it and detach the old one.
    if (mount(NULL, root, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0 &&
        mount(NULL, root, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) die("remount root read-only");
    if (chdir(root) < 0) die("chdir %s", root);
    if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root");
    if (umount2(".", MNT_DETACH) < 0) die("detach the old root");
    if (chdir("/") < 0) die("chdir /");
}

static void setup_network(void) {
    if (!cfg.loopback) return;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket for lo");
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFFLAGS, &request) < 0) die("get lo flags");
    request.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &request) < 0) die("bring lo up");
    close(fd);
}

// Landlock: a second fence behind the read-only mounts. Writes of any kind
// (open for writing, create, remove, rename, link, truncate, device ioctls)
// are allowed only below the agent's writable places; reading stays as the
// mounts allow. agentd passes the ABI it probed; anything less than that
// ABI's full set of write rights is an error, never a weaker fence.
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#define LANDLOCK_FILE_WRITES (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)
// The rights a rule on a file (not a dir) may carry.
#define LANDLOCK_FILE_RIGHTS (LANDLOCK_FILE_WRITES | LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE)

static unsigned long long landlock_handled(int abi) {
    unsigned long long rights = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
        LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
        LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
        LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2) rights |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3) rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5) rights |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return rights;
}

static void landlock_allow(int ruleset, const char *path, unsigned long long rights) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) die("landlock: open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) die("landlock: stat %s", path);
    // A file rule may carry only the rights that apply to files.
    if (!S_ISDIR(st.st_mode)) rights &= LANDLOCK_FILE_RIGHTS;
    struct landlock_path_beneath_attr rule = {.allowed_access = rights, .parent_fd = fd};
    if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
        die("landlock: allow access below %s", path);
    close(fd);
}

// The ELF interpreter a program names (PT_INTERP), into `out`; 0 if none
// (a static program, a script) or unreadable.
static int elf_interpreter(const char *path, char *out, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int found = 0;
    Elf64_Ehdr header;
    if (pread(fd, &header, sizeof header, 0) == (ssize_t)sizeof header && memcmp(header.e_ident, ELFMAG, SELFMAG) == 0) {
        int wide = header.e_ident[EI_CLASS] == ELFCLASS64;
        const Elf32_Ehdr *narrow = (const Elf32_Ehdr *)&header;
        uint64_t offset = wide ? header.e_phoff : narrow->e_phoff;
        unsigned count = wide ? header.e_phnum : narrow->e_phnum;
        unsigned entry = wide ? header.e_phentsize : narrow->e_phentsize;
        for (unsigned i = 0; i < count && i < 256 && !found; i++) {
            Elf64_Phdr program;
            Elf32_Phdr program32;
            uint64_t type, at, length;
            if (wide) {
                if (pread(fd, &program, sizeof program, (off_t)(offset + (uint64_t)i * entry)) != (ssize_t)sizeof program) break;
                type = program.p_type; at = program.p_offset; length = program.p_filesz;
            } else {
                if (pread(fd, &program32, sizeof program32, (off_t)(offset + (uint64_t)i * entry)) != (ssize_t)sizeof program32) break;
                type = program32.p_type; at = program32.p_offset; length = program32.p_filesz;
            }
            if (type != PT_INTERP || length == 0 || length >= size) continue;
            if (pread(fd, out, (size_t)length, (off_t)at) != (ssize_t)length) break;
            out[length] = 0;
            found = out[0] == '/';
        }
    }
    close(fd);
    return found;
}

// Exec of one regular file (never a dir, which would open all below it).
static void landlock_allow_program(int ruleset, const char *path) {
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        errno = EINVAL;
        die("landlock: %s is not a regular file", path);
    }
    landlock_allow(ruleset, path, LANDLOCK_ACCESS_FS_EXECUTE);
}

static void apply_landlock(void) {
    if (cfg.landlock_abi <= 0) return;
    unsigned long long handled = landlock_handled(cfg.landlock_abi);
    // The allowlist form fences exec too: only the named programs (and the
    // loader they name) may be exec'd, nothing in a writable place.
    if (cfg.program_count) handled |= LANDLOCK_ACCESS_FS_EXECUTE;
    unsigned long long writes = handled & ~(unsigned long long)LANDLOCK_ACCESS_FS_EXECUTE;
    struct landlock_ruleset_attr attributes = {.handled_access_fs = handled};
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attributes, sizeof attributes, 0);
    if (ruleset < 0) die("landlock: create a ruleset for ABI %d", cfg.landlock_abi);
    if (cfg.workdir) landlock_allow(ruleset, cfg.workdir, writes);
    for (int i = 0; i < cfg.bind_count; i++)
        if (cfg.binds[i].writable) landlock_allow(ruleset, cfg.binds[i].path, writes);
    landlock_allow(ruleset, "/tmp", writes);
    landlock_allow(ruleset, "/dev/shm", writes);
    for (int i = 0; devices[i]; i++) landlock_allow(ruleset, devices[i], LANDLOCK_FILE_WRITES & handled);
    for (int i = 0; i < cfg.program_count; i++) {
        landlock_allow_program(ruleset, cfg.programs[i]);
        char interpreter[512];
        if (elf_interpreter(cfg.programs[i], interpreter, sizeof interpreter))
            landlock_allow_program(ruleset, interpreter);
    }
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) die("landlock: restrict the agent");
    close(ruleset);
}

// Early in the sandbox (no exec happens before the agent's): no capability
// can come back through an exec. The sandbox's setup keeps what it holds.
static void drop_bounding_set(void) {
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) die("drop capability %d from the bounding set", cap);
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) die("clear ambient capabilities");
}

// Runs in the agent process just before exec: become the agent's user with
// no capability at all and no way to gain one.
static void drop_privileges(void) {
    if (setgroups(0, NULL) < 0) die("setgroups");
    if (setresgid(cfg.gid, cfg.gid, cfg.gid) < 0) die("setresgid %u", cfg.gid);
    if (setresuid(cfg.uid, cfg.uid, cfg.uid) < 0) die("setresuid %u", cfg.uid);
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) < 0) die("clear capability sets");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
    struct rlimit core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &core) < 0) die("RLIMIT_CORE");
    struct rlimit files = {cfg.nofile, cfg.nofile};
    if (setrlimit(RLIMIT_NOFILE, &files) < 0) die("RLIMIT_NOFILE");
    // After no_new_privs, which landlock_restrict_self requires.
    apply_landlock();
    // Last: the filter then also governs the exec that follows.
    if (seccomp_filter) {
        struct sock_fprog program = {.len = seccomp_length, .filter = seccomp_filter};
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) < 0) die("install the seccomp filter");
    }
}

static void read_seccomp(void) {
    if (cfg.seccomp_path == NULL) return;
    int fd = open(cfg.seccomp_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open seccomp filter %s", cfg.seccomp_path);
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) != 0 ||
        st.st_size / (off_t)sizeof(struct sock_filter) > 65535) {
        errno = EINVAL;
        die("seccomp filter %s", cfg.seccomp_path);
    }
    seccomp_filter = malloc((size_t)st.st_size);
    if (seccomp_filter == NULL || read(fd, seccomp_filter, (size_t)st.st_size) != st.st_size) die("read %s", cfg.seccomp_path);
    seccomp_length = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
    close(fd);
}

// Reads up to `length` bytes; fewer only at end of file.
static size_t read_fully(int fd, void *buffer, size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t n = read(fd, (char *)buffer + done, length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("read the request");
        if (n == 0) break;
        done += (size_t)n;
    }
    return done;
}

static void read_all(int fd, void *buffer, size_t length) {
    if (read_fully(fd, buffer, length) == length) return;
    errno = EPROTO;
    die("the request ended early");
}

// NUL-terminated strings (`length` bytes at `block`, which stays referenced)
// into options, as a command line's. Returns the problem, or NULL.
static const char *parse_block(char *block, uint32_t length, enum option_source source) {
    int count = 0;
    for (uint32_t i = 0; i < length; i++) if (block[i] == 0) count++;
    if (block[length - 1] != 0) count++;
    char **strings = calloc((size_t)count + 1, sizeof(char *));
    if (strings == NULL) return "out of memory";
    int index = 0;
    for (char *p = block; p < block + length; p += strlen(p) + 1) strings[index++] = p;
    return parse_options(index, strings, source);
}

// The header of a request or start block (`what`) into `header`. End of
// file before it: exit 0, nothing was asked for.
static void read_header(unsigned char *header, size_t size, const char *what) {
    size_t got = read_fully(cfg.request_fd, header, size);
    if (got == 0) _exit(0);
    if (got < size) {
        errno = EPROTO;
        die("the %s ended early", what);
    }
}

static uint32_t little_endian_u32(const unsigned char *bytes) {
    return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

// `length` bytes of the request fd, NUL-terminated.
static char *read_block(uint32_t length, const char *what) {
    char *block = malloc(length + 1);
    if (block == NULL) die("allocate the %s", what);
    read_all(cfg.request_fd, block, length);
    block[length] = 0;
    return block;
}

// A held sandbox's request (see the top of this file): the agent's options.
static void read_request(void) {
    unsigned char header[8];
    read_header(header, sizeof header, "request");
    uint32_t options_length = little_endian_u32(header);
    uint32_t filter_length = little_endian_u32(header + 4);
    // A filter is required: no agent runs without one.
    if (options_length == 0 || options_length > (16U << 20) || filter_length == 0 ||
        filter_length > 65535U * sizeof(struct sock_filter) || filter_length % sizeof(struct sock_filter) != 0) {
        errno = EPROTO;
        die("request of %u option bytes and %u filter bytes", options_length, filter_length);
    }
    char *options = read_block(options_length, "request");
    {
        seccomp_filter = malloc(filter_length);
        if (seccomp_filter == NULL) die("allocate the seccomp filter");
        read_all(cfg.request_fd, seccomp_filter, filter_length);
        seccomp_length = (unsigned short)(filter_length / sizeof(struct sock_filter));
    }
    const char *problem = parse_block(options, options_length, FROM_REQUEST);
    errno = EINVAL;
    if (problem) die("request: %s", problem);
    if (cfg.start_later) {
        // The start block brings them, once the sandbox is built.
        if (cfg.argv || cfg.envp) die("request: with --start later, the program and --env come in the start block");
        return;   // the request fd stays open for it
    }
    close(cfg.request_fd);
    if (cfg.argv == NULL || cfg.argv[0] == NULL) die("request: no program after --");
}

// An armed sandbox's start block (see the top of this file): read as the
// agent's user, under its filter, just before the exec.
static void read_start_block(void) {
    unsigned char header[4];
    read_header(header, sizeof header, "start block");
    uint32_t length = little_endian_u32(header);
    if (length == 0 || length > (16U << 20)) {
        errno = EPROTO;
        die("start block of %u bytes", length);
    }
    char *block = read_block(length, "start block");
    close(cfg.request_fd);
    const char *problem = parse_block(block, length, FROM_START_BLOCK);
    errno = EINVAL;
    if (problem) die("start block: %s", problem);
    if (cfg.argv == NULL || cfg.argv[0] == NULL) die("start block: no program after --");
}

static volatile pid_t forward_to = 0;

static void forward(int sig) {
    if (forward_to > 0) kill(forward_to, sig);
}

static void forward_signals(void) {
    static const int signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT};
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = forward;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) sigaction(signals[i], &action, NULL);
}

// pid 1 inside: start the agent, reap everything, report the agent's status.
// The agent process (pid 2) from its fork to its exec: the rest of the
// sandbox (a held one reads what that is first), then the agent's identity.
__attribute__((noreturn))
static void become_agent(void) {
    signal(SIGTERM, SIG_DFL);
    if (setsid() < 0) die("setsid");
    if (cfg.request_fd >= 0) read_request();
    finish_filesystem();
    if (cfg.hostname && sethostname(cfg.hostname, strlen(cfg.hostname)) < 0) die("sethostname");
    setup_network();
    drop_privileges();
    if (cfg.workdir && chdir(cfg.workdir) < 0) die("chdir %s", cfg.workdir);
    if (cfg.stdio_socket && (dup2(3, 0) < 0 || dup2(3, 1) < 0 || close(3) < 0)) die("make the socket stdin and stdout");
    if (cfg.start_later) read_start_block();
    if (cfg.envp) execve(cfg.argv[0], cfg.argv, cfg.envp);
    else execvp(cfg.argv[0], cfg.argv);
    die("exec %s", cfg.argv[0]);
}

// Closes this process's copies of the agent's stdout, stderr and socket (3).
static void close_agent_fds(void) {
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 1; fd <= 2; fd++) {
        if (fd == cfg.ready_fd || fd == cfg.exec_fd || fd == cfg.request_fd) continue;   // a caller's own plumbing
        if (null >= 0) dup2(null, fd);
        else close(fd);
    }
    if (null >= 0) close(null);
    struct stat socket_stat;
    if (fstat(3, &socket_stat) == 0 && S_ISSOCK(socket_stat.st_mode)) close(3);
}

// pid 1 inside: fork the agent, reap everything, report the agent's status.
__attribute__((noreturn))
static void run_init(int status_fd) {
    // Without --exec-fd the agent reports its exec (end of file) or why it
    // failed to init, which passes it up through the monitor.
    int exec_report[2] = {-1, -1};
    if (cfg.exec_fd < 0 && pipe2(exec_report, O_CLOEXEC) < 0) die("pipe");
    pid_t agent = fork();
    if (agent < 0) die("fork the agent");
    if (agent == 0) {
        if (exec_report[0] >= 0) close(exec_report[0]);
        close(status_fd);
        error_fd = cfg.exec_fd >= 0 ? cfg.exec_fd : exec_report[1];
        become_agent();
    }
    if (cfg.request_fd >= 0) close(cfg.request_fd);
    if (cfg.exec_fd >= 0) close(cfg.exec_fd);
    if (exec_report[1] >= 0) close(exec_report[1]);
    // The agent's output and socket are the agent's: with no copy here its
    // log ends when it (and what it started) does.
    close_agent_fds();
    // A report agentd no longer reads (a discarded held sandbox) is no reason to die.
    signal(SIGPIPE, SIG_IGN);
    // init needs no capability from here on.
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct none[2];
    memset(none, 0, sizeof none);
    if (syscall(SYS_capset, &header, none) < 0) die("drop init's capabilities");
    forward_to = agent;
    forward_signals();
    if (exec_report[0] >= 0) {
        // The agent's exec (EOF) or its setup error, passed up to the monitor.
        char line[600];
        ssize_t n;
        do { n = read(exec_report[0], line, sizeof line); } while (n < 0 && errno == EINTR);
        close(exec_report[0]);
        if (n > 0) {
            if (write(status_fd, line, (size_t)n) < 0) { /* monitor gone */ }
        } else if (write(status_fd, "exec ok\n", 8) < 0) { /* monitor gone */ }
    }
    int agent_status = 0;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (pid == agent) {
            agent_status = status;
            break;
        }
    }
    // The agent is gone: so is everything it left in the namespace, reaped
    // before the report, so that no process of the agent outlives it.
    kill(-1, SIGKILL);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {}
    char report[32];
    int length;
    int reported = 0;
    if (cfg.exec_fd >= 0 && cfg.ready_fd >= 0) {
        // Straight to agentd, a process hop sooner than through the monitor.
        length = snprintf(report, sizeof report, "exit %d\n", agent_status);
        reported = write(cfg.ready_fd, report, (size_t)length) == length;
    }
    length = snprintf(report, sizeof report, "status %d\n", agent_status);
    if (write(status_fd, report, (size_t)length) < 0) { /* monitor gone */ }
    if (reported) {
        // The namespaces go with init, and their teardown (the network
        // namespace's above all) is the dearest part of an exit. agentd
        // often starts a replacement right after the report: keep them a
        // moment, so that the two do not compete for the CPU. agentd's
        // cleanup kills what is left of the sandbox soon after.
        struct timespec moment = {0, INIT_LINGER_MILLISECONDS * 1000000L};
        nanosleep(&moment, NULL);
    }
    _exit(0);
}

// Closes every fd above 2 that is not one this helper was told about (3 is
// the agent's socket): nothing else agentd had open reaches the agent.
static void close_unknown_fds(void) {
    int highest = 3;
    int known[] = {3, cfg.ready_fd, cfg.request_fd, cfg.exec_fd};
    for (int i = 0; i < 4; i++) if (known[i] > highest) highest = known[i];
    for (int fd = 4; fd < highest; fd++) {
        int keep = 0;
        for (int i = 0; i < 4; i++) if (known[i] == fd) keep = 1;
        if (!keep) close(fd);
    }
    if (syscall(SYS_close_range, (unsigned int)highest + 1, ~0U, 0) != 0) {
        for (int fd = highest + 1; fd < 65536; fd++) close(fd);
    }
}

int main(int argc, char **argv) {
    parse(argc, argv);
    close_unknown_fds();
    read_seccomp();
    if (cfg.ready_fd >= 0) {
        fcntl(cfg.ready_fd, F_SETFD, FD_CLOEXEC);
        error_fd = cfg.ready_fd;
    }
    if (cfg.request_fd >= 0) fcntl(cfg.request_fd, F_SETFD, FD_CLOEXEC);
    if (cfg.exec_fd >= 0) fcntl(cfg.exec_fd, F_SETFD, FD_CLOEXEC);
    // Output pipes come from agentd (root): give them to the agent's user,
    // so that reopening them ("> /dev/stderr") works as on any host.
    for (int fd = 0; fd <= 2; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && fchown(fd, cfg.uid, cfg.gid) < 0) die("give fd %d to the agent", fd);
    }
    int sync_pipe[2], status_pipe[2];
    if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(status_pipe, O_CLOEXEC) < 0) die("pipe");

    int flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
                CLONE_NEWCGROUP | SIGCHLD;
    pid_t child = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (child < 0) die("clone with new namespaces");
    if (child == 0) {
        close(sync_pipe[1]);
        close(status_pipe[0]);
        // Wait for the monitor to write our uid/gid maps.
        char go;
        if (read(sync_pipe[0], &go, 1) != 1) _exit(126);
        // Become the agent's user now, so what the setup creates is owned by
        // a mapped user. Host uid 0 is not mapped here, so this does not
        // count as leaving root: the namespace's capabilities stay for the
        // setup, and are dropped before the agent runs.
        if (setgroups(0, NULL) < 0) die("setgroups");
        if (setresgid(cfg.gid, cfg.gid, cfg.gid) < 0) die("setresgid %u", cfg.gid);
        if (setresuid(cfg.uid, cfg.uid, cfg.uid) < 0) die("setresuid %u", cfg.uid);
        // After the uid change (which clears it): die with the monitor, and
        // with init the whole pid namespace goes. The monitor holds the
        // sync pipe open for its life: a hang-up means it is already gone.
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) die("PR_SET_PDEATHSIG");
        struct pollfd monitor = {.fd = sync_pipe[0], .events = POLLIN};
        if (poll(&monitor, 1, 0) > 0 && (monitor.revents & POLLHUP)) _exit(126);
        close(sync_pipe[0]);
        setup_base_filesystem();
        drop_bounding_set();
        run_init(status_pipe[1]);
    }
    close(sync_pipe[0]);
    close(status_pipe[1]);
    if (cfg.request_fd >= 0) close(cfg.request_fd);   // the sandbox reads it
    if (cfg.exec_fd >= 0) close(cfg.exec_fd);         // only the agent holds it

    // The agent's user only, mapped to itself: never host root.
    char path[64], map[64];
    snprintf(path, sizeof path, "/proc/%d/uid_map", child);
    snprintf(map, sizeof map, "%u %u 1\n", cfg.uid, cfg.uid);
    write_file(path, map);
    snprintf(path, sizeof path, "/proc/%d/gid_map", child);
    snprintf(map, sizeof map, "%u %u 1\n", cfg.gid, cfg.gid);
    write_file(path, map);
    forward_to = child;
    forward_signals();
    if (write(sync_pipe[1], "g", 1) != 1) die("release the sandbox");
    // Reporting goes through the ready fd: the agent's output and socket
    // need no copy here (the stderr of a manual run stays).
    if (cfg.ready_fd >= 0) close_agent_fds();
    signal(SIGPIPE, SIG_IGN);   // after the clone: the sandbox keeps the default
    // sync_pipe[1] stays open until we exit: init watches it to know we live.

    // First line: the agent exec'd (EOF of its report) or an error.
    char buffer[700];
    size_t used = 0;
    int ready_sent = 0, agent_status = -1;
    for (;;) {
        ssize_t n = read(status_pipe[0], buffer + used, sizeof buffer - 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        used += (size_t)n;
        buffer[used] = 0;
        char *newline;
        while ((newline = strchr(buffer, '\n')) != NULL) {
            *newline = 0;
            if (strncmp(buffer, "status ", 7) == 0) {
                agent_status = atoi(buffer + 7);
                // Tell agentd now (init did, with --exec-fd): init still
                // has to tear the namespaces down (milliseconds) before we
                // can be reaped.
                if (cfg.ready_fd >= 0) {
                    if (cfg.exec_fd < 0) dprintf(cfg.ready_fd, "exit %d\n", agent_status);
                    close(cfg.ready_fd);
                    cfg.ready_fd = -1;
                }
            } else if (!ready_sent) {
                const char *reply = strcmp(buffer, "exec ok") == 0 ? "ok" : buffer;
                if (cfg.ready_fd >= 0) {
                    dprintf(cfg.ready_fd, "%s\n", reply);
                    // After "ok" the same fd carries the agent's exit.
                    if (strcmp(reply, "ok") != 0) {
                        close(cfg.ready_fd);
                        cfg.ready_fd = -1;
                    }
                } else if (strcmp(reply, "ok") != 0) {
                    fprintf(stderr, "agentos-sandbox: %s\n", reply);
                }
                ready_sent = 1;
            }
            size_t rest = used - (size_t)(newline + 1 - buffer);
            memmove(buffer, newline + 1, rest);
            used = rest;
            buffer[used] = 0;
        }
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    if (cfg.ready_fd >= 0) close(cfg.ready_fd);
    if (agent_status < 0) {
        // init died before reporting (killed from outside).
        if (WIFSIGNALED(status)) agent_status = status;
        // A held sandbox whose request never came ends quietly.
        else return !ready_sent && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 126;
    }
    if (WIFSIGNALED(agent_status)) {
        int sig = WTERMSIG(agent_status);
        // End as the agent ended, without a core file of our own.
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        kill(getpid(), sig);
    }
    return WIFEXITED(agent_status) ? WEXITSTATUS(agent_status) : 126;
}
