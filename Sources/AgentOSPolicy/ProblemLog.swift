// The problems found so far in one pass over a policy file: the parser
// keeps going after each one so the user sees them all at once.

import Yams

final class ProblemLog {
    let file: String
    private(set) var problems: [PolicyProblem] = []

    init(file: String) {
        self.file = file
    }

    var count: Int { problems.count }

    /// At `mark`, or at the top of the file when there is none.
    func report(_ mark: Mark?, _ field: FieldPath, _ message: String) {
        report(line: mark?.line ?? 1, column: mark?.column ?? 1, field, message)
    }

    func report(line: Int, column: Int, _ field: FieldPath, _ message: String) {
        problems.append(PolicyProblem(file: file, line: line, column: column, field: field.description, message: message))
    }

    func has(_ mark: Mark?, _ field: FieldPath) -> Bool {
        let line = mark?.line ?? 1, column = mark?.column ?? 1
        return problems.contains { $0.line == line && $0.column == column && $0.field == field.description }
    }

    /// By position; problems at the same place keep the order they were found in.
    var sorted: [PolicyProblem] {
        problems.enumerated().sorted { left, right in
            (left.element.line, left.element.column, left.offset) < (right.element.line, right.element.column, right.offset)
        }.map(\.element)
    }
}
