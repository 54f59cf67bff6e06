import Synchronization

/// The agents whose context memory may hold something. An agent's context
/// is removed when it ends; most agents never use it, and asking the store
/// costs a transaction on the way of every exit (and so of every restart),
/// so an exit asks only for the agents this names. (What a kernel that
/// stopped left in contexts is removed at the next start: no agent
/// outlives its kernel.)
final class ContextMemoryUsers: Sendable {
    private let ids = Mutex<Set<String>>([])

    /// `id` has reached its context memory.
    func note(_ id: String) {
        ids.withLock { _ = $0.insert(id) }
    }

    /// Whether `id` may have left something there; forgets it.
    func take(_ id: String) -> Bool {
        ids.withLock { $0.remove(id) != nil }
    }
}
