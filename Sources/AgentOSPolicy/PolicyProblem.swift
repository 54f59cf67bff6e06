// What is wrong with a policy file, and exactly where: the format editors
// and compilers use (`file:line:col: field: message`), so a terminal or an
// editor can jump to it.

/// One thing wrong with a policy file.
public struct PolicyProblem: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    /// 1-based; 0 when the problem is about the file as a whole (unreadable).
    public var line: Int
    /// 1-based, counted in Unicode scalars (as libyaml counts).
    public var column: Int
    /// The field at fault as a path from the document's top, e.g.
    /// `supervisor.children[1].restart`; empty for YAML syntax errors.
    public var field: String
    public var message: String

    public init(file: String, line: Int, column: Int, field: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
    }

    /// `file:line:col: field: message`; the position and the field are left
    /// out when there are none.
    public var description: String {
        var text = file
        if line > 0 { text += ":\(line):\(column)" }
        text += ": "
        if !field.isEmpty { text += field + ": " }
        return text + message
    }
}

/// A policy file that cannot be used, with every problem found in it,
/// ordered by position.
public struct PolicyError: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [PolicyProblem]

    public init(problems: [PolicyProblem]) {
        self.problems = problems
    }

    /// One problem per line.
    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}
