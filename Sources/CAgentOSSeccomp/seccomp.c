#define _GNU_SOURCE
#include "agentos_seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fail(char *error, int length, const char *what, const char *name, int rc) {
    snprintf(error, (size_t)length, "%s%s%s: %s", what, name ? " " : "", name ? name : "", strerror(rc < 0 ? -rc : rc));
    return -1;
}

// "ioctl allowed unless its low 32 bits are one of deny[]": libseccomp will
// not mix an unconditional allow with conditional denials for one syscall,
// so the allowed set is spelled out as rules over bits: one rule per bit on
// which every denied request agrees (a request differing there is none of
// them), plus the exact values that agree on all those bits but are not
// denied.
static int add_ioctl_rules(scmp_filter_ctx ctx, const uint32_t *deny, int count, char *error, int length) {
    int nr = seccomp_syscall_resolve_name("ioctl");
    if (count == 0) {
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        return rc < 0 ? fail(error, length, "allow", "ioctl", rc) : 0;
    }
    uint32_t common = 0xffffffffu;  // bits on which all denied requests agree
    for (int i = 1; i < count; i++) common &= ~(deny[0] ^ deny[i]);
    for (int bit = 0; bit < 32; bit++) {
        uint32_t mask = 1u << bit;
        if (!(common & mask)) continue;
        uint64_t differs = (deny[0] & mask) ? 0 : mask;
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A1(SCMP_CMP_MASKED_EQ, mask, differs));
        if (rc < 0) return fail(error, length, "allow", "ioctl", rc);
    }
    uint32_t varying = ~common;
    int varying_bits = __builtin_popcount(varying);
    if (varying_bits > 8) {
        snprintf(error, (size_t)length, "ioctl_deny requests differ in too many bits");
        return -1;
    }
    for (uint32_t combination = 0; combination < (1u << varying_bits); combination++) {
        uint32_t value = deny[0] & common;
        int position = 0;
        for (int bit = 0; bit < 32; bit++) {
            if (varying & (1u << bit)) {
                if (combination & (1u << position)) value |= 1u << bit;
                position++;
            }
        }
        int denied = 0;
        for (int i = 0; i < count; i++) denied |= deny[i] == value;
        if (denied) continue;
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, value));
        if (rc < 0) return fail(error, length, "allow", "ioctl", rc);
    }
    return 0;
}

int aos_seccomp_compile(int default_errno, const aos_seccomp_rule *rules, int count,
                        const uint32_t *ioctl_deny, int ioctl_deny_count,
                        const char *output_path, int *skipped, char *error, int error_length) {
    *skipped = 0;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO((uint32_t)default_errno));
    if (ctx == NULL) return fail(error, error_length, "seccomp_init", NULL, ENOMEM);
    // Other ABIs (i386 via int 0x80, x32) are not in the filter: killed.
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc < 0) { seccomp_release(ctx); return fail(error, error_length, "bad-arch action", NULL, rc); }
    // A binary search over the syscall numbers instead of one long chain:
    // each syscall is decided in a few comparisons, and installing the
    // filter (the kernel runs it for every syscall number to build its
    // cache) takes a fraction of the time.
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (rc < 0) { seccomp_release(ctx); return fail(error, error_length, "binary-tree optimization", NULL, rc); }
    for (int i = 0; i < count; i++) {
        const aos_seccomp_rule *rule = &rules[i];
        int nr = seccomp_syscall_resolve_name(rule->syscall);
        if (nr == __NR_SCMP_ERROR) { (*skipped)++; continue; }
        uint32_t action = rule->action == AOS_SECCOMP_ALLOW ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO((uint32_t)rule->errno_value);
        struct scmp_arg_cmp args[2];
        for (unsigned a = 0; a < rule->arg_count && a < 2; a++) {
            const aos_seccomp_arg *arg = &rule->args[a];
            args[a] = arg->op == AOS_SECCOMP_EQ
                ? (struct scmp_arg_cmp){arg->index, SCMP_CMP_EQ, arg->value, 0}
                : (struct scmp_arg_cmp){arg->index, SCMP_CMP_MASKED_EQ, arg->mask, arg->value};
        }
        rc = seccomp_rule_add_array(ctx, action, nr, rule->arg_count, args);
        if (rc < 0) { seccomp_release(ctx); return fail(error, error_length, "rule for", rule->syscall, rc); }
    }
    if (add_ioctl_rules(ctx, ioctl_deny, ioctl_deny_count, error, error_length) < 0) { seccomp_release(ctx); return -1; }
    int fd = open(output_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { int e = errno; seccomp_release(ctx); return fail(error, error_length, "create", output_path, e); }
    rc = seccomp_export_bpf(ctx, fd);
    close(fd);
    seccomp_release(ctx);
    if (rc < 0) return fail(error, error_length, "export BPF to", output_path, rc);
    return 0;
}
