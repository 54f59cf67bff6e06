import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A sandbox helper started ahead of its agent (`agentos-sandbox
/// --request-fd`): its namespaces, uid maps and base root are made while it
/// waits, so a spawn that takes it only pays for what depends on the agent.
/// Used once: `ProcessReactor.send` gives it its request, or `discard`
/// ends it (it reads end of file and exits without starting anything).
public final class HeldSandbox: Sendable {
    /// The helper (the agent's monitor once released).
    public let child: ChildProcess
    /// Bytes a request may have: what the request pipe holds, so that
    /// sending it never blocks.
    public let requestCapacity: Int
    private let pipes: Mutex<(request: Int32, start: StartPipes)?>

    init(child: ChildProcess, requestFD: Int32, requestCapacity: Int, pipes: StartPipes) {
        self.child = child
        self.requestCapacity = requestCapacity
        self.pipes = Mutex((requestFD, pipes))
    }

    /// Whether the helper still waits for its request.
    public var isWaiting: Bool {
        pipes.withLock { $0 != nil } && !child.hasEnded
    }

    /// `body` with the request pipe, while the helper waits for it (a
    /// discard waits meanwhile); nil if it was used or discarded. For
    /// `ProcessReactor.arm`, which leaves the pipe open for the start block.
    func withRequestPipe<Result: Sendable>(_ body: (Int32) -> Result) -> Result? {
        pipes.withLock { pipes -> Result? in
            guard let request = pipes?.request else { return nil }
            return body(request)
        }
    }

    /// The pipes, for the one request.
    func take() -> (request: Int32, start: StartPipes)? {
        pipes.withLock { pipes in
            defer { pipes = nil }
            return pipes
        }
    }

    /// Ends the helper unused: it sees end of file on its request pipe.
    public func discard() {
        guard let (request, start) = take() else { return }
        close(request)
        start.close()
    }

    deinit {
        discard()
    }
}

/// The parent's read ends that tell how a sandboxed start went.
struct StartPipes: Sendable {
    /// The sandbox's setup errors and the agent's exit ("exit STATUS").
    let ready: Int32
    /// End of file once the agent has exec'd; a line if it could not.
    let exec: Int32?

    func close() {
        Glibc.close(ready)
        if let exec { Glibc.close(exec) }
    }
}

/// A held sandbox that has its request, between `ProcessReactor.send` and
/// `awaitStart`.
public struct StartTicket: Sendable {
    /// The helper (the agent's monitor).
    public let child: ChildProcess
    let pipes: StartPipes

    /// Instead of `awaitStart`: the start is not waited for; the helper is killed.
    public func abandon() {
        pipes.close()
        _ = try? child.signal(SIGKILL)
    }
}
