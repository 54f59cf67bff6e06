import Testing
@testable import AgentOSPolicy

@Suite("Suggestions and capability URIs")
struct SuggestionAndCapabilityTests {
    @Test func editDistanceCountsATranspositionAsOneEdit() {
        #expect(Suggestions.editDistance("strategy", "strategy") == 0)
        #expect(Suggestions.editDistance("stratgey", "strategy") == 1)
        #expect(Suggestions.editDistance("", "abc") == 3)
        #expect(Suggestions.editDistance("kitten", "sitting") == 3)
    }

    @Test func suggestsOnlyLikelyTypos() {
        let keys = PolicyKeys.child
        #expect(Suggestions.nearest(to: "programm", among: keys) == "program")
        #expect(Suggestions.nearest(to: "Restart", among: keys) == "restart")
        #expect(Suggestions.nearest(to: "enviroment", among: keys) == nil)
        #expect(Suggestions.nearest(to: "xyz", among: keys) == nil)
        #expect(Suggestions.hint(for: "shutdwon", among: keys) == " (did you mean 'shutdown'?)")
    }

    @Test func capabilityForms() {
        for good in ["capability://file/srv/data/*?action=read",
                     "capability://http/api.example.com/*?action=request&rate=100/min",
                     "capability://shell?action=execute&timeout=30s&allowlist=/bin/ls,/bin/cat,/bin/grep",
                     "capability://agent?action=spawn&max=3",
                     "capability://memory/shared/team?action=read,write",
                     "capability://topic/events?action=publish"] {
            #expect(CapabilityURI.problem(in: good) == nil, "\(good)")
        }
        #expect(CapabilityURI.problem(in: "capability://?action=read")?.hasPrefix("no kind") == true)
        #expect(CapabilityURI.problem(in: "capability://file?action=read")?.hasPrefix("a file capability names") == true)
        #expect(CapabilityURI.problem(in: "capability://agent?action=spawn&max")?.contains("not key=value") == true)
        #expect(CapabilityURI.problem(in: "capability://agent?action=spawn&action=kill")?.contains("twice") == true)
        #expect(CapabilityURI.problem(in: "capability://agent?action=")?.contains("no value") == true)
        #expect(CapabilityURI.problem(in: "capability://agent /x?action=spawn")?.contains("no spaces") == true)
    }

    @Test func names() {
        #expect(Names.isPolicyName("team-2_a") && !Names.isPolicyName("Team") && !Names.isPolicyName("-x")
            && !Names.isPolicyName(String(repeating: "a", count: 64)))
        #expect(Names.isChildID("Worker.1") && !Names.isChildID("a/b") && !Names.isChildID("") && !Names.isChildID(".x"))
    }
}
