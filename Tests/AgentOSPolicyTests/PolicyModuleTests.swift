import Testing
@testable import AgentOSPolicy
