import Foundation
import Synchronization

/// Counts changes to the host's mount table. A held sandbox copied the
/// mount table when it was made (its mount namespace); one made before a
/// later mount on the host would bind the directory under that mount, not
/// what is mounted there now, so slots check this count before using one.
final class MountWatcher: Sendable {
    private let changes = Atomic<UInt64>(0)

    /// Starts a thread that waits for the kernel's "mount table changed"
    /// notice (POLLPRI on /proc/self/mountinfo). Without it (nil), every
    /// check reports a change: held sandboxes are then never trusted.
    static func start() -> MountWatcher? {
        let fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let watcher = MountWatcher()
        let thread = Thread {
            while true {
                // Each poll that reports a change also takes note of it (the
                // kernel compares the namespace's event count with the
                // file's): no need to read the table.
                var descriptor = pollfd(fd: fd, events: Int16(POLLPRI), revents: 0)
                let ready = poll(&descriptor, 1, -1)
                if ready > 0 { watcher.changes.add(1, ordering: .sequentiallyConsistent) }
            }
        }
        thread.name = "agentos-mounts"
        thread.start()
        return watcher
    }

    /// The number of changes seen so far.
    var generation: UInt64 { changes.load(ordering: .sequentiallyConsistent) }
}
