#define _GNU_SOURCE
#include "agentos_shim.h"

#include <errno.h>
#include <sched.h>

int aos_thread_cpus(uint64_t *mask) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -errno;
    *mask = 0;
    for (int cpu = 0; cpu < 64; cpu++) {
        if (CPU_ISSET(cpu, &set)) *mask |= (uint64_t)1 << cpu;
    }
    return 0;
}

int aos_thread_set_cpus(uint64_t mask) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu = 0; cpu < 64; cpu++) {
        if (mask & ((uint64_t)1 << cpu)) CPU_SET(cpu, &set);
    }
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : -errno;
}
