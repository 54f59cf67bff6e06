import AgentOSProtocol
import ArgumentParser

struct PolicyListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List applied policies.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        guard case .policies(let list) = try connection.withKernel({
            try $0.call(.policies(Agentos_V1_PolicyListRequest()))
        }) else { throw unexpectedResponse("policy ls") }
        if output.json {
            Output.json(list.policies.map(PolicySummaryJSON.init))
            return
        }
        Output.table(["POLICY", "STATE", "WORKERS", "SUPERVISORS", "APPLIED", "FILE"], list.policies.map {
            [$0.name, $0.state + ($0.endedReason.isEmpty ? "" : " (\($0.endedReason))"), String($0.workers),
             String($0.supervisors), Output.timestamp($0.appliedAtNs) ?? "", $0.file]
        })
    }
}
