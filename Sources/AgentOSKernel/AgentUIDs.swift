import Synchronization

/// The host uids agents run as: each live agent and each held sandbox has
/// its own, never 0, never handed out again while in use.
final class AgentUIDs: Sendable {
    private let range: ClosedRange<UInt32>
    private let state: Mutex<(inUse: Set<UInt32>, next: UInt32)>

    init(range: ClosedRange<UInt32>) {
        self.range = range
        self.state = Mutex(([], range.lowerBound))
    }

    /// The lowest-surprise free uid: round robin through the range, so a
    /// uid just given up is not handed out again at once. nil: all in use,
    /// or fewer than `keepingFree` would be left free.
    func allocate(keepingFree: Int = 0) -> UInt32? {
        let count = Int(range.upperBound - range.lowerBound) + 1
        return state.withLock { state in
            guard count - state.inUse.count > keepingFree else { return nil }
            for _ in 0..<count {
                let candidate = state.next
                state.next = candidate >= range.upperBound ? range.lowerBound : candidate + 1
                if candidate != 0 && !state.inUse.contains(candidate) {
                    state.inUse.insert(candidate)
                    return candidate
                }
            }
            return nil
        }
    }

    /// Once nothing runs as `uid` any more.
    func release(_ uid: UInt32) {
        _ = state.withLock { $0.inUse.remove(uid) }
    }

    var exhaustedMessage: String {
        "no free agent uid: all of \(range.lowerBound)-\(range.upperBound) are in use"
    }
}
