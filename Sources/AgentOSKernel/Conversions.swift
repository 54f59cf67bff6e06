import AgentOSProtocol
import AgentOSStore

extension AgentRecord.State {
    var wire: AgentState {
        switch self {
        case .pending: return .pending
        case .running: return .running
        case .paused: return .paused
        case .completed: return .completed
        case .failed: return .failed
        case .lost: return .lost
        }
    }
}

extension AgentRecord {
    func wire(connected: Bool = false, history: [EventRecord] = []) -> AgentInfo {
        var info = AgentInfo()
        info.id = id
        info.name = name
        info.state = state.wire
        info.argv = argv
        info.env = environment
        info.workDir = workDir
        info.program = program
        info.pid = pid
        info.createdAtNs = createdAt
        info.startedAtNs = startedAt
        info.endedAtNs = endedAt
        info.logPath = logPath
        info.connected = connected
        info.bootID = bootID
        if let exit {
            var status = ExitStatus()
            status.reason = exit.reason
            status.detail = exit.detail
            if let code = exit.code {
                status.exited = true
                status.code = code
            } else if let signal = exit.signal {
                status.exited = false
                status.signal = signal
            }
            info.exit = status
        }
        info.history = history.map(\.wire)
        info.limits = Lifecycle.wireLimits(limits)
        if !sandbox.isEmpty { info.sandbox = Lifecycle.wireSandbox(sandbox) }
        return info
    }
}

extension EventRecord {
    var wire: KernelEvent {
        var event = KernelEvent()
        event.seq = UInt64(seq)
        event.timeNs = time
        event.kind = kind
        event.agentID = agentID
        event.message = message
        event.data = data
        return event
    }
}

extension LogRecord {
    var wire: LogChunk {
        var chunk = LogChunk()
        switch stream {
        case .stdout: chunk.stream = .stdout
        case .stderr: chunk.stream = .stderr
        case .kernel: chunk.stream = .kernel
        }
        chunk.timeNs = time
        chunk.data = .init(data)
        return chunk
    }
}
