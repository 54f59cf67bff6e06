import AgentOSClient
import AgentOSProtocol
import Foundation

/// A minimal agent that speaks the protocol: it says hello on the socket the
/// kernel gave it (AGENTOS_FD), prints what it learned about itself, asks the
/// kernel for its status, then works (prints a line per tick) until told to
/// stop. The quick-start demo and the integration tests run it.
///
/// Under a supervisor (AGENTOS_CHILD_PATH set) it also resumes from its last
/// checkpoint, says it is ready, and saves a checkpoint at every tick.
/// It lists the capabilities it holds, and asks the kernel about each ask in
/// AGENTOS_DEMO_ASK ("ACTION KIND/RESOURCE", several joined by ";").
@main
struct DemoAgent {
    static func main() {
        let environment = ProcessInfo.processInfo.environment
        let arguments = CommandLine.arguments.dropFirst()
        let ticks = arguments.first.flatMap(Int.init) ?? 3
        let interval = arguments.dropFirst().first.flatMap(Double.init) ?? 0.2

        guard let fdText = environment[AgentEnvironment.socketFD], let fd = Int32(fdText) else {
            print("not started by agentd: \(AgentEnvironment.socketFD) is not set; running without kernel services")
            work(ticks: ticks, interval: interval)
            return
        }
        let kernel: KernelClient
        var first = 1
        do {
            kernel = try KernelClient.adopt(fd: fd, client: "agentos-demo-agent \(AgentOSVersion.release)")
            let me = kernel.welcome.agent
            print("hello from \(me.name) (\(me.id)): kernel \(kernel.welcome.kernelVersion), protocol \(kernel.welcome.version)")
            if case .status(let status) = try kernel.call(.status(.init())) {
                print("kernel pid \(status.pid) has \(status.agents.running) running agent(s)")
            }
            if case .myCapabilities(let held) = try kernel.call(.myCapabilities(.init())), !held.capabilities.isEmpty {
                print("holds \(held.capabilities.map { "\($0.id) \($0.uri)" }.joined(separator: "; "))")
            }
            for ask in (environment["AGENTOS_DEMO_ASK"] ?? "").split(separator: ";") {
                let parts = ask.split(separator: " ", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { continue }
                var check = Agentos_V1_CapCheckRequest()
                check.action = parts[0]
                check.resource = parts[1]
                if case .capCheck(let answer) = try kernel.call(.capCheck(check)) {
                    print("\(ask): " + (answer.allowed ? "allowed by \(answer.grantID)"
                                                         : "denied (\(answer.reasons.joined(separator: "; ")))"))
                }
            }
            if let path = environment["AGENTOS_CHILD_PATH"] {
                if case .loadCheckpoint(let checkpoint) = try kernel.call(.loadCheckpoint(.init())),
                   checkpoint.savedAtNs != 0, let last = Int(String(decoding: checkpoint.data, as: UTF8.self)) {
                    first = last + 1
                    print("\(path): resumed at tick \(first) from the checkpoint of agent \(checkpoint.agentID)")
                }
                _ = try kernel.call(.ready(.init()))
            }
        } catch {
            FileHandle.standardError.write(Data("demo agent: \(error)\n".utf8))
            exit(2)
        }
        let supervised = environment["AGENTOS_CHILD_PATH"] != nil
        work(from: first, ticks: ticks, interval: interval) { tick in
            guard supervised else { return }
            var save = Agentos_V1_SaveCheckpointRequest()
            save.data = Data(String(tick).utf8)
            _ = try? kernel.call(.saveCheckpoint(save))
        }
    }

    static func work(from first: Int = 1, ticks: Int, interval: Double, each: (Int) -> Void = { _ in }) {
        for tick in first...max(first, ticks) {
            print("tick \(tick)/\(ticks)")
            fflush(nil)
            each(tick)
            Thread.sleep(forTimeInterval: interval)
        }
        print("done")
    }
}
