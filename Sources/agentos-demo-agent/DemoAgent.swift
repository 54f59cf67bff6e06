import AgentOSClient
import AgentOSProtocol
import Foundation

/// A minimal agent that speaks the protocol: it says hello on the socket the
/// kernel gave it (AGENTOS_FD), prints what it learned about itself, asks the
/// kernel for its status, then works (prints a line per tick) until told to
/// stop. The quick-start demo and the integration tests run it.
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
        do {
            let kernel = try KernelClient.adopt(fd: fd, client: "agentos-demo-agent \(AgentOSVersion.release)")
            let me = kernel.welcome.agent
            print("hello from \(me.name) (\(me.id)): kernel \(kernel.welcome.kernelVersion), protocol \(kernel.welcome.version)")
            if case .status(let status) = try kernel.call(.status(.init())) {
                print("kernel pid \(status.pid) has \(status.agents.running) running agent(s)")
            }
        } catch {
            FileHandle.standardError.write(Data("demo agent: \(error)\n".utf8))
            exit(2)
        }
        work(ticks: ticks, interval: interval)
    }

    static func work(ticks: Int, interval: Double) {
        for tick in 1...max(1, ticks) {
            print("tick \(tick)/\(ticks)")
            fflush(nil)
            Thread.sleep(forTimeInterval: interval)
        }
        print("done")
    }
}
