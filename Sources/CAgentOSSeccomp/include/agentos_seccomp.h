// Compiles a seccomp profile with libseccomp into BPF, once per profile, in
// agentd; the sandbox helper installs the BPF in each agent before exec.
#ifndef AGENTOS_SECCOMP_H
#define AGENTOS_SECCOMP_H

#include <stdint.h>

typedef enum {
    AOS_SECCOMP_ALLOW = 0,
    AOS_SECCOMP_ERRNO = 1,
} aos_seccomp_action;

typedef enum {
    AOS_SECCOMP_EQ = 0,         // arg == value
    AOS_SECCOMP_MASKED_EQ = 1,  // (arg & mask) == value
} aos_seccomp_op;

typedef struct {
    unsigned int index;
    aos_seccomp_op op;
    uint64_t mask;
    uint64_t value;
} aos_seccomp_arg;

typedef struct {
    const char *syscall;
    aos_seccomp_action action;
    int errno_value;            // for AOS_SECCOMP_ERRNO
    unsigned int arg_count;     // 0..2, all must hold
    aos_seccomp_arg args[2];
} aos_seccomp_rule;

/// Builds the filter and writes its BPF to `output_path`. `ioctl_deny` are
/// ioctl requests refused with EPERM, compared on their low 32 bits (the
/// kernel ignores the upper half). Syscalls this architecture does not
/// have are skipped and counted in *skipped. Returns 0, or -1 with a
/// message in `error`.
int aos_seccomp_compile(int default_errno, const aos_seccomp_rule *rules, int count,
                        const uint32_t *ioctl_deny, int ioctl_deny_count,
                        const char *output_path, int *skipped, char *error, int error_length);

#endif
