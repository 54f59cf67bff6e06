import Foundation
import Testing
@testable import AgentOSPolicy

/// No input traps: truncated, mangled, hostile or odd YAML gives problems.
@Suite("Robustness: truncated and mangled input")
struct RobustnessTests {
    /// A small deterministic generator (xorshift64*), so failures reproduce.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 2_685_821_657_736_338_717
        }
    }

    @Test func truncatedExamplesGiveProblemsNotTraps() throws {
        for file in try exampleFiles() {
            let text = try String(contentsOf: file, encoding: .utf8)
            let characters = Array(text)
            guard let headerEnd = text.range(of: "supervisor:\n")?.upperBound else {
                Issue.record("\(file.lastPathComponent) has no supervisor")
                continue
            }
            let headerLength = text.distance(from: text.startIndex, to: headerEnd)
            var failures = 0
            for cut in 0..<characters.count {
                let prefix = String(characters[..<cut])
                let found = testParser.problems(text: prefix, file: "cut.yaml")
                if cut < headerLength {
                    #expect(!found.isEmpty, "\(file.lastPathComponent) cut at \(cut) was accepted")
                }
                if !found.isEmpty { failures += 1 }
                for problem in found {
                    #expect(problem.line >= 1 && problem.column >= 1, "\(problem)")
                }
            }
            // Most cuts land inside a token or a structure.
            #expect(failures * 2 > characters.count, "\(file.lastPathComponent): \(failures) of \(characters.count)")
        }
    }

    @Test func mangledExamplesNeverTrap() throws {
        var generator = Generator(state: 0x5EED_1234_ABCD_0001)
        let alphabet = Array(" \n\t:-[]{},'\"#&*!|>%@`?0aZ\u{0}\u{FFFD}é")
        for file in try exampleFiles() {
            let original = Array(try String(contentsOf: file, encoding: .utf8))
            for _ in 0..<150 {
                var mangled = original
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    let index = Int.random(in: 0..<mangled.count, using: &generator)
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: mangled[index] = alphabet.randomElement(using: &generator) ?? " "
                    case 1: mangled.remove(at: index)
                    default: mangled.insert(alphabet.randomElement(using: &generator) ?? " ", at: index)
                    }
                }
                _ = testParser.problems(text: String(mangled), file: "mangled.yaml")
            }
        }
    }

    @Test func oddDocumentsGiveOneClearProblem() {
        #expect(problems("") == ["p.yaml:1:1: the file is empty: a policy needs version: 1, name: and supervisor:"])
        #expect(problems("# only a comment\n") == problems(""))
        #expect(problems("- a\n- b") == ["p.yaml:1:1: expected a mapping with version:, name: and supervisor:, found a list"])
        #expect(problems("just text") == [
            "p.yaml:1:1: expected a mapping with version:, name: and supervisor:, found 'just text'",
        ])
        #expect(problems("version: 1\n---\nversion: 1\n").count == 1)
        #expect(problems("version: 1\nversion: 1\n") == ["p.yaml:1:1: key 'version' given twice in one mapping"])
        #expect(problems("{1: 2, [x]: y}").contains("p.yaml:1:8: expected a key (text), found a list"))
    }

    @Test func truncatedQuotedScalarIsASyntaxErrorWithAPosition() throws {
        let found = testParser.problems(text: "version: 1\nname: t\nsupervisor:\n  children:\n    - id: \"a", file: "p.yaml")
        let problem = try #require(found.first)
        #expect(found.count == 1)
        #expect(problem.line == 5 && problem.field.isEmpty)
        #expect(problem.message.hasPrefix("YAML syntax: found unexpected end of stream"))
    }

    @Test func aliasBombsAndDeepNestingAreBounded() {
        // Ten levels of tenfold aliases: 10^10 children if expanded.
        var text = "version: 1\nname: t\nx0: &a0 {id: w, program: sh}\n"
        for level in 1...9 {
            let previous = "*a\(level - 1)"
            text += "x\(level): &a\(level) {id: s, supervisor: {children: [\(Array(repeating: previous, count: 10).joined(separator: ", "))]}}\n"
        }
        text += "supervisor: {children: [*a9]}\n"
        let found = testParser.problems(text: text, file: "bomb.yaml")
        #expect(!found.isEmpty)
        #expect(found.count < 1_000)

        var deep = "version: 1\nname: t\nsupervisor:\n"
        var indent = "  "
        for level in 0..<40 {
            deep += indent + "children:\n" + indent + "  - id: s\(level)\n" + indent + "    supervisor:\n"
            indent += "      "
        }
        deep += indent + "children: []\n"
        #expect(testParser.problems(text: deep, file: "deep.yaml").contains { $0.message.contains("nested more than 16 deep") })
    }

    @Test func oversizedInputIsRefusedBeforeParsing() {
        let huge = "version: 1\n# " + String(repeating: "x", count: PolicyParser.maximumFileBytes) + "\n"
        #expect(problems(huge) == ["p.yaml:1:1: larger than 1 MiB: not a policy file"])
    }
}
