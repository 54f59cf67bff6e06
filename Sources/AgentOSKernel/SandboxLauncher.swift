import AgentOSConfinement
import AgentOSProtocol
import CAgentOSShim
import Foundation

/// How agentd starts `agentos-sandbox` for an agent: from a held sandbox
/// (started ahead of time for an agent slot, see `HeldSandbox`) or cold,
/// exec'd on the spawn path with everything on its command line. The helper
/// gets the same options either way; only when it learns them differs.
struct SandboxLauncher: Sendable {
    let helper: String
    /// The empty dir each sandbox mounts its root on (in its own namespace).
    let root: String
    let reactor: ProcessReactor
    let uids: AgentUIDs

    /// fds the helper gets: 3 is the agent's protocol socket (fixed by the protocol).
    static let readyFD: Int32 = 4
    static let requestFD: Int32 = 5
    static let execFD: Int32 = 6
    static let uidsKeptFree = 8

    /// A held sandbox with what it was made for: its uid (in use until it
    /// exits, then the agent's) and the kernel's end of its protocol socket.
    struct Prepared: Sendable {
        let held: HeldSandbox
        let uid: UInt32
        let kernelEnd: Int32
        /// The uid came from the pool for this sandbox (and goes back with
        /// it); false: an agent's own, given back when the agent ends.
        var ownsUID = true
    }

    /// What the helper learns about one agent besides its uid.
    struct AgentOptions {
        var hostname: String
        var workDir: String
        var sandbox: Lifecycle.SandboxRequest
        var landlockABI: Int
        var program: String
        /// argv after argv[0] (the program's path is argv[0] inside).
        var arguments: [String]
        var environment: [String: String]
        /// Paths agentd resolved itself (a tool run's): bound with no
        /// symlink followed (--ro-strict, --rw-strict).
        var strictReadOnly: [String] = []
        var strictReadWrite: [String] = []
        /// The allowlist form (cold only): the only programs in the root,
        /// and names that lead to them (link -> program).
        var programs: [String] = []
        var programLinks: [(link: String, program: String)] = []
        /// The kernel's connection is its stdin and stdout (an MCP server).
        var stdioSocket = false

        /// What the helper learns about the agent, as options: from
        /// --hostname to the program's arguments after "--".
        func agentStrings() throws(KernelError) -> [String] {
            try Self.checked(sandboxStrings + startStrings)
        }

        /// The options an armed sandbox is built with (`startStrings` come later).
        func armingStrings() throws(KernelError) -> [String] {
            try Self.checked(sandboxStrings + ["--start", "later"])
        }

        /// What an armed sandbox's start block says: the environment, "--",
        /// the program and its arguments.
        var startStrings: [String] {
            var strings: [String] = []
            for (key, value) in environment.sorted(by: { $0.key < $1.key }) { strings += ["--env", "\(key)=\(value)"] }
            return strings + ["--", program] + arguments
        }

        /// `strings`, unless one has a NUL byte: it would end early as a C
        /// string, and in a request split into strings of its own (options).
        static func checked(_ strings: [String]) throws(KernelError) -> [String] {
            if let bad = strings.first(where: { $0.utf8.contains(0) }) {
                throw KernelError(.invalidArgument,
                                  "'\(bad.replacingOccurrences(of: "\0", with: "\\0"))' contains a NUL byte")
            }
            return strings
        }

        /// The sandbox itself: the options both forms share, from
        /// --hostname to before the environment and "--".
        var sandboxStrings: [String] {
            var options = ["--hostname", hostname, "--workdir", workDir, "--tmp-size", String(sandbox.tmpSize),
                           "--net", sandbox.network, "--landlock", String(landlockABI)]
            // A path inside a system dir is visible read-only already (no bind needed).
            for path in sandbox.readOnly where Lifecycle.systemDirectory(containing: path) == nil {
                options += ["--ro", path]
            }
            for path in sandbox.readWrite { options += ["--rw", path] }
            for path in strictReadOnly { options += ["--ro-strict", path] }
            for path in strictReadWrite { options += ["--rw-strict", path] }
            for path in programs { options += ["--program", path] }
            for (link, program) in programLinks { options += ["--program-link", link + "=" + program] }
            if stdioSocket { options += ["--stdio", "socket"] }
            return options
        }
    }

    /// Starts a helper for an agent slot: its own uid (given the slot's dir),
    /// or `agentUID` (a live agent's, for its next tool run), in the slot's
    /// cgroups, writing to its output, holding its socket.
    func hold(directory: String, output: any OutputSink, cgroup: AgentCgroup?,
              agentUID: UInt32? = nil) async throws -> Prepared {
        // Held sandboxes never take the last free uids: a run must not be
        // refused a uid that a sandbox waiting for some later run holds.
        guard let uid = agentUID ?? uids.allocate(keepingFree: Self.uidsKeptFree) else {
            throw KernelError(.unsupported, uids.exhaustedMessage)
        }
        var handedOver = agentUID != nil
        defer { if !handedOver { uids.release(uid) } }
        guard chown(directory, uid, uid) == 0 else {
            throw KernelError(.spawnFailed, "cannot give \(directory) to uid \(uid): \(errnoDescription(errno))")
        }
        var pair: [Int32] = [-1, -1]
        let pairRC = aos_socketpair(&pair)
        guard pairRC == 0 else { throw KernelError(.spawnFailed, "socketpair: \(errnoDescription(-pairRC))") }
        let cgroupFDs: [Int32]
        do {
            cgroupFDs = try cgroup?.openProcsFiles() ?? []
        } catch {
            close(pair[0])
            close(pair[1])
            throw KernelError.from(error)
        }
        defer { for fd in cgroupFDs { close(fd) } }
        let arguments = [helper, "--uid", String(uid), "--gid", String(uid), "--root", root,
                         "--ready-fd", String(Self.readyFD), "--exec-fd", String(Self.execFD),
                         "--request-fd", String(Self.requestFD)]
        let spec = SpawnSpec(executable: helper, arguments: arguments, environment: [:], workingDirectory: "/",
                             output: output, protocolSocket: pair[1], protocolSocketTarget: AgentEnvironment.socketFDNumber,
                             cgroupProcsFDs: cgroupFDs, readyPipeTarget: Self.readyFD, execPipeTarget: Self.execFD,
                             requestPipeTarget: Self.requestFD)
        do {
            let held = try await reactor.hold(spec)
            close(pair[1])
            handedOver = true
            return Prepared(held: held, uid: uid, kernelEnd: pair[0], ownsUID: agentUID == nil)
        } catch {
            close(pair[0])
            close(pair[1])
            throw KernelError.from(error)
        }
    }

    /// Ends a held sandbox that will not be used; returns once its monitor
    /// has exited (killed if it has not within two seconds). Its uid is the
    /// caller's to release, once nothing of it runs (its cgroup is empty).
    func discard(_ prepared: Prepared) async {
        prepared.held.discard()
        close(prepared.kernelEnd)
        let child = prepared.held.child
        let killer = Task {
            try await Task.sleep(for: .seconds(2))
            _ = try? child.signal(SIGKILL)
        }
        _ = await child.exit()
        killer.cancel()
    }

    /// A held sandbox's request: the options block, then the BPF filter
    /// (the format is at the top of agentos-sandbox's sandbox.c).
    /// `arming`: the sandbox part alone, for `ProcessReactor.arm`.
    func request(_ agent: AgentOptions, filter: [UInt8], arming: Bool = false) throws(KernelError) -> [UInt8] {
        let block = Self.strings(try arming ? agent.armingStrings() : agent.agentStrings())
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + block.count + filter.count)
        for length in [UInt32(block.count), UInt32(filter.count)] {
            withUnsafeBytes(of: length.littleEndian) { bytes += $0 }
        }
        return bytes + block + filter
    }

    /// An armed sandbox's start block: its length, then the strings.
    func startBlock(_ agent: AgentOptions) throws(KernelError) -> [UInt8] {
        let block = Self.strings(try AgentOptions.checked(agent.startStrings))
        return withUnsafeBytes(of: UInt32(block.count).littleEndian) { Array($0) } + block
    }

    /// NUL-terminated strings, one after the other.
    private static func strings<Strings: Sequence<String>>(_ strings: Strings) -> [UInt8] {
        var block: [UInt8] = []
        for string in strings {
            block += string.utf8
            block.append(0)
        }
        return block
    }

    /// The cold form: everything on the helper's command line. The helper
    /// itself (root until it builds the sandbox) runs with an empty
    /// environment: nothing of the agent's, such as LD_PRELOAD, reaches it.
    func coldSpec(_ agent: AgentOptions, uid: UInt32, seccompPath: String, log: any OutputSink, socket: Int32?,
                  cgroupFDs: [Int32]) throws(KernelError) -> SpawnSpec {
        let arguments = [helper, "--uid", String(uid), "--gid", String(uid), "--root", root,
                         "--ready-fd", String(Self.readyFD), "--exec-fd", String(Self.execFD),
                         "--seccomp-bpf", seccompPath] + (try agent.agentStrings())
        return SpawnSpec(executable: helper, arguments: arguments, environment: [:], workingDirectory: "/",
                         output: log, protocolSocket: socket, protocolSocketTarget: AgentEnvironment.socketFDNumber,
                         cgroupProcsFDs: cgroupFDs, readyPipeTarget: Self.readyFD, execPipeTarget: Self.execFD)
    }
}
