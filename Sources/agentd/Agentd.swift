import AgentdCommand

// The command lives in AgentdCommand so it can be tested; this only runs it.
@main
extension AgentdCommand {}
