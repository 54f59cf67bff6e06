/// What to start and with which descriptors. The kernel fills this in; the
/// sandbox settings join it in the confinement issue.
public struct SpawnSpec: Sendable {
    /// Absolute path of the program to exec.
    public var executable: String
    /// Full argv, argv[0] included.
    public var arguments: [String]
    /// The complete environment: nothing is inherited from the kernel.
    public var environment: [String: String]
    public var workingDirectory: String?
    /// Where the child's stdout and stderr go; nil: /dev/null. stdin is
    /// always /dev/null (agents talk to the kernel over their socket).
    public var output: (any OutputSink)?
    /// The child's end of the kernel socketpair and where it is placed.
    public var protocolSocket: Int32?
    public var protocolSocketTarget: Int32
    /// cgroup.procs files (opened for writing) the child joins before exec.
    public var cgroupProcsFDs: [Int32]
    /// Where to give the child the write end of a readiness pipe (the
    /// sandbox helper's --ready-fd); spawn then returns only once a line
    /// came back: "ok" (the agent runs) or the reason it could not start.
    public var readyPipeTarget: Int32?
    /// Where to give the child the write end of an exec pipe (the sandbox
    /// helper's --exec-fd; needs `readyPipeTarget`): its end of file, with
    /// nothing written, says the agent exec'd, straight from the agent.
    public var execPipeTarget: Int32?
    /// Where to give the child the read end of a request pipe (a held
    /// sandbox's --request-fd); only for `ProcessReactor.hold`.
    public var requestPipeTarget: Int32?

    public init(executable: String, arguments: [String], environment: [String: String],
                workingDirectory: String? = nil, output: (any OutputSink)? = nil,
                protocolSocket: Int32? = nil, protocolSocketTarget: Int32 = 3, cgroupProcsFDs: [Int32] = [],
                readyPipeTarget: Int32? = nil, execPipeTarget: Int32? = nil, requestPipeTarget: Int32? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.output = output
        self.protocolSocket = protocolSocket
        self.protocolSocketTarget = protocolSocketTarget
        self.cgroupProcsFDs = cgroupProcsFDs
        self.readyPipeTarget = readyPipeTarget
        self.execPipeTarget = execPipeTarget
        self.requestPipeTarget = requestPipeTarget
    }
}

/// How a child process ended.
public enum ProcessExit: Sendable, Equatable, CustomStringConvertible {
    case exited(code: Int32)
    case signaled(signal: Int32, coreDumped: Bool)

    /// The shell's convention: the code, or 128 + the signal.
    public var shellStatus: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal, _): return 128 + signal
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): return "exited with code \(code)"
        case .signaled(let signal, let core):
            return "killed by \(signalName(signal))" + (core ? " (core dumped)" : "")
        }
    }
}

/// SIGTERM-style name of a signal number.
public func signalName(_ signal: Int32) -> String {
    let names: [Int32: String] = [
        1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
        8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
        14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
        20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
        26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
    ]
    return names[signal] ?? "signal \(signal)"
}

/// Receives what a child writes to stdout and stderr, on the reactor
/// thread, in the order it was read. `finish` comes once both pipes are at
/// end of file (the child and every descendant holding them are gone).
public protocol OutputSink: Sendable {
    func write(_ bytes: UnsafeRawBufferPointer, stream: OutputStream)
    func finish()
}

public enum OutputStream: UInt8, Sendable {
    case stdout = 1
    case stderr = 2
}
