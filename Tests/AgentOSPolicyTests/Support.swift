import AgentOSPolicy
import Foundation

/// A parser that knows a fixed set of programs, so tests do not depend on the host.
let testParser = PolicyParser(programExists: { ["/bin/sh", "sh", "/bin/sleep", "/usr/bin/env"].contains($0) })

/// Every problem in `yaml`, as `file:line:col: field: message` lines.
func problems(_ yaml: String) -> [String] {
    testParser.problems(text: yaml, file: "p.yaml").map(\.description)
}

/// The repository's Policies directory.
let policiesDirectory: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Policies")

func exampleFiles() throws -> [URL] {
    try FileManager.default.contentsOfDirectory(at: policiesDirectory.appendingPathComponent("examples"),
                                                includingPropertiesForKeys: nil)
        .filter { $0.pathExtension == "yaml" }
        .sorted { $0.lastPathComponent < $1.lastPathComponent }
}

/// The smallest valid policy, to build bad ones from.
let minimalPolicy = """
    version: 1
    name: t
    supervisor:
      children:
        - id: a
          program: /bin/sh
    """
