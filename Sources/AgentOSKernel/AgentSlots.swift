import AgentOSConfinement
import Foundation
import Logging
import Synchronization

/// Agent ids whose directory, log file and cgroups were made ahead of time.
///
/// Creating a directory or a file costs about 0.2 ms on an ordinary ext4
/// disk, and a cgroup as much in each of up to six hierarchies: more than the
/// rest of a spawn's preparation together. A few prepared slots take that
/// off the spawn path, and are refilled in the background; the limits are
/// written when a slot is taken. Slots never used are removed at shutdown, or at the next
/// start if the kernel died (`removeUnrecorded`).
final class AgentSlots: Sendable {
    struct Slot: Sendable {
        let id: String
        let directory: String
        let log: AgentLog
        /// Made with no limits; nil without usable cgroups.
        let cgroup: AgentCgroup?
    }

    private let agentsDirectory: String
    private let logsDirectory: String
    private let logMaximumBytes: Int
    private let capacity: Int
    private let cgroups: CgroupManager?
    private let logger: Logger
    private let state = Mutex<(ready: [Slot], refilling: Bool, closed: Bool)>(([], false, false))

    init(agentsDirectory: String, logsDirectory: String, logMaximumBytes: Int, capacity: Int = 4,
         cgroups: CgroupManager? = nil, logger: Logger) {
        self.cgroups = cgroups
        self.agentsDirectory = agentsDirectory
        self.logsDirectory = logsDirectory
        self.logMaximumBytes = logMaximumBytes
        self.capacity = capacity
        self.logger = logger
    }

    /// A slot whose id `isTaken` does not reject: a prepared one if there is
    /// one, else made now. Starts a refill either way.
    func take(isTaken: (String) -> Bool) throws -> Slot {
        defer { refill() }
        while let slot = state.withLock({ $0.ready.popLast() }) {
            if !isTaken(slot.id) { return slot }
            discard(slot)
        }
        var id = randomHexID()
        while isTaken(id) { id = randomHexID() }
        return try make(id: id)
    }

    /// Returns an unused slot taken by a call that then failed validation.
    func giveBack(_ slot: Slot) {
        let kept = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.ready.append(slot)
            return true
        }
        if !kept { discard(slot) }
    }

    /// Tops the pool up to capacity on a background task, one refill at a time.
    func refill() {
        let start = state.withLock { state -> Bool in
            guard !state.closed, !state.refilling, state.ready.count < capacity else { return false }
            state.refilling = true
            return true
        }
        guard start else { return }
        Task.detached(priority: .background) { [self] in
            while state.withLock({ !$0.closed && $0.ready.count < capacity }) {
                do {
                    let slot = try make(id: randomHexID())
                    let kept = state.withLock { state -> Bool in
                        guard !state.closed else { return false }
                        state.ready.append(slot)
                        return true
                    }
                    if !kept { discard(slot) }
                } catch {
                    logger.warning("cannot prepare an agent slot: \(error)")
                    break
                }
            }
            state.withLock { $0.refilling = false }
        }
    }

    /// Removes the slots never used; no more are made.
    func close() {
        let unused = state.withLock { state -> [Slot] in
            state.closed = true
            defer { state.ready.removeAll() }
            return state.ready
        }
        for slot in unused { discard(slot) }
    }

    private func make(id: String) throws -> Slot {
        let directory = agentsDirectory + "/" + id
        guard mkdir(directory, 0o700) == 0 else {
            throw KernelError(.spawnFailed, "cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        do {
            let log = try AgentLog(path: logsDirectory + "/" + id + ".log", maximumBytes: logMaximumBytes)
            do {
                let cgroup = try cgroups?.create(agentID: id, limits: ResourceLimits())
                return Slot(id: id, directory: directory, log: log, cgroup: cgroup)
            } catch {
                log.finish()
                unlink(log.path)
                throw error
            }
        } catch {
            rmdir(directory)
            throw error
        }
    }

    /// Removes a taken slot that will not be used (its dir, log, cgroups).
    func drop(_ slot: Slot) {
        discard(slot)
    }

    private func discard(_ slot: Slot) {
        slot.cgroup?.removeDirectories()
        slot.log.finish()
        unlink(slot.log.path)
        rmdir(slot.directory)
    }

    /// Deletes agent dirs and logs that no agent in the store owns: slots a
    /// killed kernel had prepared. Returns how many were removed.
    @discardableResult
    static func removeUnrecorded(agentsDirectory: String, logsDirectory: String, recorded: Set<String>) -> Int {
        let files = FileManager.default
        var removed = 0
        for name in (try? files.contentsOfDirectory(atPath: agentsDirectory)) ?? [] where !recorded.contains(name) {
            if (try? files.removeItem(atPath: agentsDirectory + "/" + name)) != nil { removed += 1 }
        }
        for name in (try? files.contentsOfDirectory(atPath: logsDirectory)) ?? [] {
            let id = String(name.prefix { $0 != "." })
            if !recorded.contains(id), (try? files.removeItem(atPath: logsDirectory + "/" + name)) != nil { removed += 1 }
        }
        return removed
    }
}
