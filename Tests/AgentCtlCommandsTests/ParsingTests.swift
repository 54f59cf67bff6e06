@testable import AgentCtlCommands
import ArgumentParser
import Testing

@Suite("agentctl argument parsing")
struct ParsingTests {
    @Test func runTakesTheProgramAfterTheSeparator() throws {
        let command = try #require(try AgentCtl.parseAsRoot(
            ["run", "--name", "web", "--env", "A=1", "-e", "B=x=y", "--", "/bin/sh", "-c", "echo --name"]) as? RunCommand)
        #expect(command.name == "web")
        #expect(command.argv == ["/bin/sh", "-c", "echo --name"])
        let request = try command.request()
        #expect(request.env == ["A": "1", "B": "x=y"])
        #expect(request.argv == ["/bin/sh", "-c", "echo --name"])
    }

    @Test func runWithoutSeparatorKeepsTheProgramsOwnFlags() throws {
        let command = try #require(try AgentCtl.parseAsRoot(["run", "/bin/ls", "-la", "/tmp"]) as? RunCommand)
        #expect(command.argv == ["/bin/ls", "-la", "/tmp"])
    }

    @Test func runMakesRelativeProgramPathsAbsolute() throws {
        let command = try #require(try AgentCtl.parseAsRoot(["run", "--", "./tool", "x"]) as? RunCommand)
        let program = try command.request().argv[0]
        #expect(program.hasPrefix("/"))
        #expect(program.hasSuffix("/tool"))
        #expect(!program.contains("/./"))
        // A bare name is left for the kernel to look up in PATH.
        let bare = try #require(try AgentCtl.parseAsRoot(["run", "--", "python3"]) as? RunCommand)
        #expect(try bare.request().argv == ["python3"])
    }

    @Test func runWithoutAProgramIsAnError() {
        #expect(throws: (any Error).self) { try AgentCtl.parseAsRoot(["run"]) }
        #expect(throws: (any Error).self) { try AgentCtl.parseAsRoot(["run", "--name", "x", "--"]) }
        #expect(throws: (any Error).self) { try AgentCtl.parseAsRoot(["run", "--env", "=v", "--", "/bin/true"]) }
        #expect(throws: (any Error).self) {
            try AgentCtl.parseAsRoot(["run", "--env", "AGENTOS_SURELY_UNSET_VARIABLE", "--", "/bin/true"])
        }
    }

    /// `run --help` shows help (the program's arguments would capture it);
    /// after `--` it is the program's own.
    @Test func runHelpIsHelpButNotAfterTheSeparator() throws {
        do {
            _ = try AgentCtl.parseAsRoot(["run", "--help"])
            Issue.record("run --help parsed as a run")
        } catch {
            #expect(AgentCtl.exitCode(for: error) == .success)
            #expect(AgentCtl.fullMessage(for: error).contains("--wait"))
        }
        let command = try #require(try AgentCtl.parseAsRoot(["run", "--", "--help"]) as? RunCommand)
        #expect(command.argv == ["--help"])
    }

    @Test func stopParsesItsTimeout() throws {
        let command = try #require(try AgentCtl.parseAsRoot(["stop", "web", "--timeout", "1.5s"]) as? StopCommand)
        #expect(try command.graceMilliseconds() == 1_500)
        #expect(throws: (any Error).self) { try AgentCtl.parseAsRoot(["stop", "web", "--timeout", "soon"]) }
        #expect(throws: (any Error).self) { try AgentCtl.parseAsRoot(["stop", "web", "--timeout", "0"]) }
    }

    @Test func everyDataCommandTakesJSONAndSocket() throws {
        for arguments in [["status"], ["ps", "-a"], ["inspect", "x"], ["stop", "x"], ["kill", "x"], ["wait", "x"],
                          ["logs", "x", "-f"], ["events", "-f", "--since", "3"], ["run", "--", "/bin/true"]] {
            let parsed = try AgentCtl.parseAsRoot(arguments + ["--json", "--socket", "/tmp/s"])
            #expect(!(parsed is AgentCtl), "\(arguments) did not parse to a subcommand")
        }
    }

    @Test func eventsSinceZeroMeansReplayEverything() throws {
        let command = try #require(try AgentCtl.parseAsRoot(["events", "-f", "--since", "0"]) as? EventsCommand)
        #expect(command.since == 0)
        #expect(command.follow)
    }

    @Test func unknownSubcommandsAndFlagsAreRejected() {
        #expect(throws: (any Error).self) { try AgentCtl.parseAsRoot(["frobnicate"]) }
        #expect(throws: (any Error).self) { try AgentCtl.parseAsRoot(["ps", "--everything"]) }
    }
}
