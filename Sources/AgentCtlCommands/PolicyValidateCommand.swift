import AgentOSPolicy
import ArgumentParser
import Foundation

/// `agentctl policy validate FILE...`: checks policy files here, without a
/// kernel, and reports every problem in each as `file:line:col: field: message`.
struct PolicyValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check policy files (no kernel needed); print every problem with its line, column and field.",
        discussion: """
            Each valid file prints "FILE: ok (policy NAME: N supervisors, M workers)". Problems \
            go to stderr, one per line as file:line:col: field: message, and the exit status is \
            1 if any file has one. Programs are looked up on this host: an absolute path, or a \
            name in \(PolicyParser.systemPath). "-" reads standard input.
            """)

    @Argument(help: ArgumentHelp("Policy files (YAML); - for standard input.", valueName: "file"))
    var files: [String] = []

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("no policy file given: agentctl policy validate FILE...") }
    }

    /// One file's outcome.
    struct Outcome {
        var file: String
        var document: PolicyDocument?
        var problems: [PolicyProblem]
    }

    func outcomes(parser: PolicyParser = PolicyParser()) -> [Outcome] {
        files.map { file in
            let label = file == "-" ? "<stdin>" : file
            do throws(PolicyError) {
                let document = file == "-"
                    ? try parser.parse(text: String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self),
                                       file: label)
                    : try parser.parse(contentsOf: file)
                return Outcome(file: label, document: document, problems: [])
            } catch {
                return Outcome(file: label, document: nil, problems: error.problems)
            }
        }
    }

    func run() throws {
        let outcomes = outcomes()
        if output.json {
            Output.json(PolicyValidationJSON(outcomes))
        } else {
            for outcome in outcomes {
                if let document = outcome.document {
                    Output.line("\(outcome.file): ok (\(Self.summary(document)))")
                }
                for problem in outcome.problems {
                    FileHandle.standardError.write(Data((problem.description + "\n").utf8))
                }
            }
        }
        if outcomes.contains(where: { $0.document == nil }) { throw ExitCode(1) }
    }

    /// "policy demo: 2 supervisors, 4 workers".
    static func summary(_ document: PolicyDocument) -> String {
        func count(_ number: Int, _ noun: String) -> String { "\(number) \(noun)\(number == 1 ? "" : "s")" }
        return "policy \(document.name): \(count(document.supervisorCount, "supervisor")), "
            + count(document.workerCount, "worker")
    }
}

/// `agentctl policy validate --json`.
struct PolicyValidationJSON: Encodable {
    struct File: Encodable {
        var file: String
        var ok: Bool
        var policy: String?
        var supervisors: Int?
        var workers: Int?
        var problems: [Problem]
    }

    struct Problem: Encodable {
        var file: String
        var line: Int
        var column: Int
        var field: String
        var message: String
    }

    var ok: Bool
    var files: [File]

    init(_ outcomes: [PolicyValidateCommand.Outcome]) {
        files = outcomes.map { outcome in
            File(file: outcome.file, ok: outcome.document != nil, policy: outcome.document?.name,
                 supervisors: outcome.document?.supervisorCount, workers: outcome.document?.workerCount,
                 problems: outcome.problems.map {
                     Problem(file: $0.file, line: $0.line, column: $0.column, field: $0.field, message: $0.message)
                 })
        }
        ok = files.allSatisfy(\.ok)
    }
}
