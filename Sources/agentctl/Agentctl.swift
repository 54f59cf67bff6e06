import AgentCtlCommands

// The commands live in AgentCtlCommands so they can be tested; this only runs them.
@main
extension AgentCtl {}
