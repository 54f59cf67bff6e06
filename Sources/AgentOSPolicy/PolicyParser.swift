// Reads a policy file: YAML with positions (Yams' composer), every field
// checked by name and type, the supervision rules of scenario 25 applied
// to the resulting tree, and every problem reported at its line and column.

import AgentOSSupervision
import Foundation
import Yams

/// Parses and validates policy files.
public struct PolicyParser: Sendable {
    /// Whether a worker's program exists; tests inject their own.
    public var programExists: ProgramCheck

    /// The one format version this release reads.
    public static let formatVersion = 1
    /// Far beyond any real policy; keeps a hostile file from costing much.
    public static let maximumFileBytes = 1 << 20

    public init(programExists: @escaping ProgramCheck = PolicyParser.systemProgramExists) {
        self.programExists = programExists
    }

    /// The policy in `text`, or every problem in it. `file` is only used in
    /// the problems' text (a path, or a label such as "<stdin>").
    public func parse(text: String, file: String) throws(PolicyError) -> PolicyDocument {
        let (document, problems) = check(text: text, file: file)
        guard let document, problems.isEmpty else { throw PolicyError(problems: problems) }
        return document
    }

    /// Every problem in `text`, ordered by position; empty when it is a valid policy.
    public func problems(text: String, file: String) -> [PolicyProblem] {
        check(text: text, file: file).problems
    }

    /// Reads and parses the policy file at `path`.
    public func parse(contentsOf path: String) throws(PolicyError) -> PolicyDocument {
        let text: String
        do {
            text = try Self.read(path)
        } catch {
            throw PolicyError(problems: [PolicyProblem(file: path, line: 0, column: 0, field: "", message: error.description)])
        }
        return try parse(text: text, file: path)
    }

    struct ReadError: Error, CustomStringConvertible {
        let description: String
    }

    /// The file's text: UTF-8, not too large.
    static func read(_ path: String) throws(ReadError) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ReadError(description: "no such file")
        }
        guard !isDirectory.boolValue else { throw ReadError(description: "is a directory, not a policy file") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ReadError(description: "cannot be read (permission denied?)")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maximumFileBytes + 1) ?? Data()
        } catch {
            throw ReadError(description: "cannot be read: \(error.localizedDescription)")
        }
        guard data.count <= maximumFileBytes else {
            throw ReadError(description: "larger than \(maximumFileBytes >> 20) MiB: not a policy file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ReadError(description: "not UTF-8 text")
        }
        return text
    }

    // MARK: One pass

    func check(text: String, file: String) -> (document: PolicyDocument?, problems: [PolicyProblem]) {
        let log = ProblemLog(file: file)
        guard text.utf8.count <= Self.maximumFileBytes else {
            log.report(nil, .top, "larger than \(Self.maximumFileBytes >> 20) MiB: not a policy file")
            return (nil, log.sorted)
        }
        let node: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else {
                log.report(nil, .top, "the file is empty: a policy needs version: 1, name: and supervisor:")
                return (nil, log.sorted)
            }
            node = composed
        } catch {
            Self.reportSyntax(error, text: text, to: log)
            return (nil, log.sorted)
        }

        let values = ValueReader(log: log)
        guard let top = MappingReader(node, .top, values: values, expected: "a mapping with version:, name: and supervisor:",
                                      allowed: PolicyKeys.document,
                                      elsewhere: Dictionary(uniqueKeysWithValues: PolicyKeys.supervisor.map { ($0, "supervisor:") }))
        else { return (nil, log.sorted) }

        top.require("version", "missing: add 'version: \(Self.formatVersion)' at the top")
        if let version = top.integer("version"), version != Self.formatVersion {
            log.report(top.markOf("version"), .top.key("version"),
                       "unsupported version \(version): this release reads version \(Self.formatVersion)")
        }
        top.require("name", "missing: every policy has a name (unique among applied policies)")
        let name = top.text("name")
        if let name, !Names.isPolicyName(name) {
            log.report(top.markOf("name"), .top.key("name"), "invalid policy name '\(name)': \(Names.policyNameRule)")
        }
        top.require("supervisor", "missing: a policy declares its root supervisor under supervisor:")

        let builder = TreeBuilder(values: values, programExists: programExists)
        var root: SupervisorSpec?
        if let rootNode = top.value("supervisor"),
           let reader = builder.supervisorReader(rootNode, .top.key("supervisor"), nested: false) {
            let spec = builder.supervisor(reader, at: [], depth: 0)
            var sources = builder.sources
            for problem in spec.problems(at: []) { sources.report(problem, to: log) }
            root = spec
        }
        guard log.count == 0, let name, let root else { return (nil, log.sorted) }
        var document = PolicyDocument(name: name, root: root, launches: builder.launches, file: file, source: text)
        document.budgets = builder.budgets
        return (document, [])
    }

    /// A YAML syntax error, at its position.
    static func reportSyntax(_ error: any Error, text: String, to log: ProblemLog) {
        guard let error = error as? YamlError else {
            log.report(nil, .top, "not valid YAML: \(error)")
            return
        }
        func detail(_ problem: String, _ context: YamlError.Context?) -> String {
            guard let context else { return "YAML syntax: \(problem)" }
            return "YAML syntax: \(problem) (\(context.text) at \(context.mark.line):\(context.mark.column))"
        }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            log.report(mark, .top, detail(problem, context))
        case .reader(let problem, let offset, _, _):
            let (line, column) = offset.map { position(ofCharacter: $0, in: text) } ?? (1, 1)
            log.report(line: line, column: column, .top, "YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            log.report(context.mark, .top, "key \(keys) given twice in one mapping")
        default:
            log.report(nil, .top, "not valid YAML: \(error)")
        }
    }

    /// Line and column (1-based, in Unicode scalars) of the character at `offset`.
    private static func position(ofCharacter offset: Int, in text: String) -> (line: Int, column: Int) {
        var line = 1, column = 1
        for character in text.prefix(max(0, offset)) {
            if character == "\n" || character == "\r\n" {
                line += 1
                column = 1
            } else {
                column += character.unicodeScalars.count
            }
        }
        return (line, column)
    }
}
