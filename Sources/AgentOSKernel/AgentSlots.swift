import AgentOSConfinement
import Foundation
import Logging
import Synchronization

/// Agent ids whose directory, log file and cgroups were made ahead of time.
///
/// Creating a directory or a file costs about 0.2 ms on an ordinary ext4
/// disk, and a cgroup as much in each of up to six hierarchies: more than the
/// rest of a spawn's preparation together. The sandbox helper is dearer
/// still (its exec, seven namespaces, the uid maps, a root with the system
/// dirs: 2-3 ms), so a slot made in the background also holds one, started
/// and waiting for its agent (`SandboxLauncher.hold`). A few prepared slots
/// take all that off the spawn path and are refilled in the background, once
/// no slot has been taken for a few ms (at once when the pool runs low): a
/// refill competing with the agent just started costs that start a third of
/// its time on two cores. The limits are written when a slot is taken. Slots never used are removed at
/// shutdown, or at the next start if the kernel died (`removeUnrecorded`;
/// their held helpers die with the kernel).
final class AgentSlots: Sendable {
    struct Slot: Sendable {
        let id: String
        let directory: String
        let log: AgentLog
        /// Where the slot's child writes: its log, unless a tool run
        /// captures it (see `SlotOutput`).
        let output: SlotOutput
        /// Made with no limits; nil without usable cgroups.
        let cgroup: AgentCgroup?
        /// A sandbox helper waiting for this slot's agent; nil for a slot
        /// made on the spawn path (or when holding one failed).
        var prepared: SandboxLauncher.Prepared?
        /// The host's mount-table generation when the helper was started.
        var mountGeneration: UInt64 = 0
    }

    private let agentsDirectory: String
    private let logsDirectory: String
    private let logMaximumBytes: Int
    private let capacity: Int
    private let cgroups: CgroupManager?
    private let launcher: SandboxLauncher?
    private let mounts: MountWatcher?
    private let logger: Logger
    private let state = Mutex<(ready: [Slot], refilling: Bool, closed: Bool, holdFailed: Bool)>(([], false, false, false))
    /// When a slot was last taken, and whether a deferred refill waits.
    private let takes = Mutex<(last: ContinuousClock.Instant?, deferred: Bool)>((nil, false))
    /// How long after the last take a refill waits while slots are left:
    /// a spawn's agent starts (and a short one ends) within this, and a
    /// refill (a helper's exec and namespaces, a few ms of CPU) would
    /// compete with it, and with the next spawns of a burst.
    static let refillQuiet: Duration = .milliseconds(5)
    private let quiet: Duration

    init(agentsDirectory: String, logsDirectory: String, logMaximumBytes: Int, capacity: Int = 4,
         cgroups: CgroupManager? = nil, launcher: SandboxLauncher? = nil, quiet: Duration = refillQuiet,
         logger: Logger) {
        self.cgroups = cgroups
        self.quiet = quiet
        // A held sandbox is trusted only while the host's mounts are known
        // not to have changed since it was made: without the watcher, none is held.
        let watcher = launcher == nil ? nil : MountWatcher.start()
        if launcher != nil && watcher == nil {
            logger.warning("cannot watch /proc/self/mountinfo: sandboxes are not held ahead of time")
        }
        self.mounts = watcher
        self.launcher = watcher == nil ? nil : launcher
        self.agentsDirectory = agentsDirectory
        self.logsDirectory = logsDirectory
        self.logMaximumBytes = logMaximumBytes
        self.capacity = capacity
        self.logger = logger
    }

    /// The host's mount-table generation, for a sandbox held elsewhere;
    /// nil when it cannot be watched (then nothing may be held).
    var mountGeneration: UInt64? { mounts?.generation }

    /// The launcher, when sandboxes are held ahead of time.
    var holdingLauncher: SandboxLauncher? { launcher }

    /// Whether `slot`'s held sandbox may still serve: its helper waits, and
    /// the host's mounts have not changed since it copied them (a stale
    /// copy would show the agent what the host has since unmounted).
    func isServable(_ slot: Slot) -> Bool {
        guard let prepared = slot.prepared, let generation = mounts?.generation else { return false }
        return prepared.held.isWaiting && generation == slot.mountGeneration
    }

    /// A slot whose id `isTaken` does not reject: a prepared one if there is
    /// one (with a held sandbox still waiting, unless `cold`), else made now.
    /// Starts a refill either way, unless the caller does once its start is
    /// through (`refillNow` false): a refill execs a helper, which would
    /// compete for the CPU with the sandbox just taken.
    func take(cold: Bool = false, refillNow: Bool = true, isTaken: (String) -> Bool) throws -> Slot {
        defer { if refillNow { refill() } }
        // One with a held sandbox first (a cold slot would need a uid a held
        // one may have), the oldest first: its helper has had the most time
        // to get ready. A cold spawn takes one without (its log must not be
        // a held helper's, which ends when that helper does).
        while let slot = state.withLock({ state -> Slot? in
            let index = cold ? state.ready.firstIndex { $0.prepared == nil }
                : state.ready.firstIndex { $0.prepared != nil } ?? (state.ready.isEmpty ? nil : 0)
            return index.map { state.ready.remove(at: $0) }
        }) {
            // What the pool gave (a slot made here instead does not count):
            // its refill waits for a quiet moment.
            takes.withLock { $0.last = .now }
            // A held sandbox that died while it waited cannot serve, nor can
            // one that predates a change to the host's mounts (its copy of
            // them is stale): its slot goes.
            if slot.prepared != nil && !isServable(slot) {
                drop(slot)
                continue
            }
            if !isTaken(slot.id) { return slot }
            drop(slot)
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
        if !kept { drop(slot) }
    }

    /// Tops the pool up to capacity on a background task, one refill at a
    /// time: at once when at most one slot is left, else once no slot has
    /// been taken for `refillQuiet`.
    func refill() {
        let (count, closed) = state.withLock { ($0.ready.count, $0.closed) }
        guard !closed, count < capacity else { return }
        // Deferred while slots are left and one was taken lately; the one
        // deferred refill is started by whoever defers first.
        enum Decision { case now, later, alreadyLater }
        let decision = count <= 1 ? .now : takes.withLock { takes -> Decision in
            guard let last = takes.last, ContinuousClock.now - last < quiet else { return .now }
            defer { takes.deferred = true }
            return takes.deferred ? .alreadyLater : .later
        }
        switch decision {
        case .now:
            startRefill()
        case .later:
            Task.detached(priority: .background) { [self] in
                while let last = takes.withLock({ $0.last }), ContinuousClock.now - last < quiet {
                    try? await Task.sleep(until: last + quiet)
                }
                takes.withLock { $0.deferred = false }
                refill()
            }
        case .alreadyLater:
            break
        }
    }

    private func startRefill() {
        let start = state.withLock { state -> Bool in
            guard !state.closed, !state.refilling, state.ready.count < capacity else { return false }
            state.refilling = true
            return true
        }
        guard start else { return }
        Task.detached(priority: .background) { [self] in
            while state.withLock({ !$0.closed && $0.ready.count < capacity }) {
                do {
                    var slot = try make(id: randomHexID())
                    if let launcher {
                        // Read before the helper copies the mount table: a
                        // change in between makes the slot stale, never the reverse.
                        slot.mountGeneration = mounts?.generation ?? 0
                        do {
                            slot.prepared = try await launcher.hold(directory: slot.directory, output: slot.output,
                                                                    cgroup: slot.cgroup)
                        } catch {
                            // The slot still serves, with a cold helper; say so once.
                            if state.withLock({ state in defer { state.holdFailed = true }; return !state.holdFailed }) {
                                logger.warning("cannot hold a sandbox ahead of time (spawns exec it cold): \(error)")
                            }
                        }
                    }
                    let kept = state.withLock { state -> Bool in
                        guard !state.closed else { return false }
                        state.ready.append(slot)
                        return true
                    }
                    if !kept { await discard(slot) }
                } catch {
                    logger.warning("cannot prepare an agent slot: \(error)")
                    break
                }
            }
            state.withLock { $0.refilling = false }
        }
    }

    /// Removes the slots never used (their held helpers exit first); no
    /// more are made.
    func close() async {
        for slot in markClosed() { await discard(slot) }
    }

    /// `close` for a kernel that failed to start: held helpers are told to
    /// end but not waited for (what they leave, the next start removes).
    func closeWithoutWaiting() {
        for slot in markClosed() { drop(slot) }
    }

    private func markClosed() -> [Slot] {
        state.withLock { state -> [Slot] in
            state.closed = true
            defer { state.ready.removeAll() }
            return state.ready
        }
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
                return Slot(id: id, directory: directory, log: log, output: SlotOutput(log: log), cgroup: cgroup)
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

    /// Removes a taken slot that will not be used (its helper, dir, log,
    /// cgroups), in the background.
    func drop(_ slot: Slot) {
        if let prepared = slot.prepared { prepared.held.discard() }
        Task.detached { await self.discard(slot) }
    }

    /// Removes a slot that served a tool run, once its child has ended:
    /// what ran in its cgroups is killed, a held sandbox's uid given back
    /// (a cold run's is the caller's), its private dir removed with what
    /// the run left.
    /// `discarding`: its held sandbox was never used (it is told to end).
    func retire(_ slot: Slot, discarding: Bool = false) async {
        if let prepared = slot.prepared, discarding, let launcher {
            await launcher.discard(prepared)   // closes the kernel's end too
        } else if let prepared = slot.prepared {
            Glibc.close(prepared.kernelEnd)
        }
        await slot.cgroup?.killAndRemove()
        if let prepared = slot.prepared, prepared.ownsUID { launcher?.uids.release(prepared.uid) }
        slot.cgroup?.removeDirectories()
        slot.log.finish()
        unlink(slot.log.path)
        try? FileManager.default.removeItem(atPath: slot.directory)
    }

    private func discard(_ slot: Slot) async {
        if let prepared = slot.prepared, let launcher {
            await launcher.discard(prepared)
            // Its uid is free once nothing of the sandbox runs any more.
            await slot.cgroup?.killAndRemove()
            if prepared.ownsUID { launcher.uids.release(prepared.uid) }
        }
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

/// A slot's output: its log, or (for a slot that serves a tool run) a
/// capture. A held helper's pipes are made when it starts, before anyone
/// knows what the slot will serve; nothing is written to them before its
/// request, so the switch is made before the request is sent.
final class SlotOutput: OutputSink, Sendable {
    let log: AgentLog
    private let capture = Mutex<(any OutputSink)?>(nil)

    init(log: AgentLog) {
        self.log = log
    }

    /// From now on the child's output goes to `sink`, and so does `finish`.
    func capture(into sink: any OutputSink) {
        capture.withLock { $0 = sink }
    }

    func write(_ bytes: UnsafeRawBufferPointer, stream: AgentOSConfinement.OutputStream) {
        (capture.withLock { $0 } ?? log).write(bytes, stream: stream)
    }

    func finish() {
        (capture.withLock { $0 } ?? log).finish()
    }
}
