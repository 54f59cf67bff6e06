// agentos-file-tool: what the file.* tools run, inside a tool sandbox whose
// mount namespace holds only the path the checked capability covers.
//
//   agentos-file-tool read PATH MAX_BYTES
//   agentos-file-tool list PATH MAX_ENTRIES
//   agentos-file-tool write PATH create|overwrite|append INPUT
//
// read: the first MAX_BYTES bytes of the regular file on stdout.
// list: one record per entry on stdout, "TYPE SIZE NAME\0" (TYPE f file,
//       d dir, l symlink, o other), at most MAX_ENTRIES, in name order;
//       its outcome line is "ok LISTED TOTAL".
// write: the bytes of the file INPUT (agentd's, in the tool's private work
//       dir) into PATH: create fails if PATH exists; then fsync.
// The last line on stderr is the outcome: "ok N" (read: the file's size;
// list: the number of entries; write: bytes written) with exit status 0,
// or "error ERRNO: what" with exit status 1. The last part of PATH is never
// followed if it is a symlink.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((format(printf, 1, 2), noreturn))
static void fail(const char *format, ...) {
    int code = errno;
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    dprintf(2, "error %d: %s: %s\n", code, message, strerror(code));
    _exit(1);
}

static void write_all(int fd, const char *bytes, size_t length, const char *what) {
    while (length > 0) {
        ssize_t n = write(fd, bytes, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("write %s", what);
        bytes += n;
        length -= (size_t)n;
    }
}

static unsigned long long number(const char *text, const char *what) {
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || *end || end == text) {
        errno = EINVAL;
        fail("%s '%s'", what, text);
    }
    return value;
}

static int read_file(const char *path, unsigned long long limit) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) fail("open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) fail("stat %s", path);
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        fail("%s is not a regular file", path);
    }
    char buffer[65536];
    unsigned long long sent = 0;
    while (sent < limit) {
        size_t want = limit - sent < sizeof buffer ? (size_t)(limit - sent) : sizeof buffer;
        ssize_t n = read(fd, buffer, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("read %s", path);
        if (n == 0) break;
        write_all(1, buffer, (size_t)n, "the content");
        sent += (unsigned long long)n;
    }
    dprintf(2, "ok %lld\n", (long long)st.st_size);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int list_dir(const char *path, unsigned long long limit) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) fail("open %s", path);
    struct dirent **entries;
    int count = scandirat(fd, ".", &entries, NULL, by_name);
    if (count < 0) fail("list %s", path);
    unsigned long long listed = 0, total = 0;
    for (int i = 0; i < count; i++) {
        const char *name = entries[i]->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        total++;
        if (listed == limit) continue;
        struct stat st;
        char type = 'o';
        long long size = 0;
        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            type = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : 'o';
            size = (long long)st.st_size;
        }
        char head[64];
        int length = snprintf(head, sizeof head, "%c %lld ", type, size);
        write_all(1, head, (size_t)length, "the listing");
        write_all(1, name, strlen(name) + 1, "the listing");
        listed++;
    }
    dprintf(2, "ok %llu %llu\n", listed, total);
    return 0;
}

static int write_file(const char *path, const char *mode, const char *input) {
    int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_CREAT;
    if (strcmp(mode, "create") == 0) flags |= O_EXCL;
    else if (strcmp(mode, "overwrite") == 0) flags |= O_TRUNC;
    else if (strcmp(mode, "append") == 0) flags |= O_APPEND;
    else {
        errno = EINVAL;
        fail("mode '%s' (create, overwrite or append)", mode);
    }
    int source = open(input, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (source < 0) fail("open the input %s", input);
    int fd = open(path, flags, 0644);
    if (fd < 0) fail("open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) fail("stat %s", path);
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        fail("%s is not a regular file", path);
    }
    char buffer[65536];
    unsigned long long written = 0;
    for (;;) {
        ssize_t n = read(source, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("read the input");
        if (n == 0) break;
        write_all(fd, buffer, (size_t)n, path);
        written += (unsigned long long)n;
    }
    if (fsync(fd) < 0) fail("fsync %s", path);
    if (close(fd) < 0) fail("close %s", path);
    dprintf(2, "ok %llu\n", written);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "read") == 0) return read_file(argv[2], number(argv[3], "byte limit"));
    if (argc == 4 && strcmp(argv[1], "list") == 0) return list_dir(argv[2], number(argv[3], "entry limit"));
    if (argc == 5 && strcmp(argv[1], "write") == 0) return write_file(argv[2], argv[3], argv[4]);
    errno = EINVAL;
    fail("usage: agentos-file-tool read PATH MAX_BYTES | list PATH MAX_ENTRIES | write PATH MODE INPUT");
}
