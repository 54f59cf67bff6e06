import AgentKit
import Foundation

/// The built-in LLM agent: started by the kernel for a goal
/// (`agentos-llm-agent --goal ID`), confined like any agent. It asks the
/// model named by AGENTOS_MODEL, runs the tools it asks for through the
/// kernel, checkpoints every step, and ends the goal with the answer.
///
/// Exit status: 0 the goal is done (or was already), 1 it failed or the
/// kernel went away, 2 bad usage.
@main
enum LLMAgent {
    static func main() async {
        let arguments = CommandLine.arguments
        if arguments.dropFirst().contains(where: { $0 == "-h" || $0 == "--help" }) {
            Output.partial(Settings.usage + "\n")
            exit(0)
        }
        let settings: Settings
        do {
            settings = try Settings.parse(arguments, environment: ProcessInfo.processInfo.environment)
        } catch {
            fail("\(error.description) (\(Settings.usage))", status: 2)
        }
        do {
            let agent = try Agent.connect()
            let outcome = try await GoalRun(agent: agent, settings: settings).run()
            exit(outcome.exitCode)
        } catch let error as AgentKitError where error.code == .notStartedByKernel {
            fail(error.message, status: 2)
        } catch {
            // The goal stays with the kernel: a restart resumes from the last checkpoint.
            fail("\(error)", status: 1)
        }
    }

    private static func fail(_ message: String, status: Int32) -> Never {
        Output.warn(message, prefix: "agentos-llm-agent: ")
        exit(status)
    }
}
