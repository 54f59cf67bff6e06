@testable import AgentOSCapabilities
import Foundation
import Testing

@Suite("Capability URIs")
struct CapabilityParsingTests {
    @Test func aFileCapabilityParsesToItsPartsAndBackToOneCanonicalForm() throws {
        let capability = try Capability(parsing: "capability://file/srv/data/**?action=read,list&rate=100/min&timeout=30s")
        #expect(capability.kind == .file)
        #expect(capability.resource.pattern == "/srv/data/**")
        #expect(capability.actions == ["read", "list"])
        #expect(capability.constraints.rate == Constraints.Rate(count: 100, windowSeconds: 60))
        #expect(capability.constraints.timeoutMilliseconds == 30_000)
        #expect(capability.description == "capability://file/srv/data/**?action=list,read&timeout=30000ms&rate=100/min")
        #expect(try Capability(parsing: capability.description) == capability)
    }

    @Test func everyConstraintParses() throws {
        let capability = try Capability(parsing: "capability://shell?action=execute&allowlist=/usr/bin/git,/usr/bin/ls"
            + "&max=5&expires=2030-01-01T00:00:00Z&approve=operator&timeout=2m")
        #expect(capability.resource.pattern == "/**")
        #expect(capability.constraints.allowlist == ["/usr/bin/git", "/usr/bin/ls"])
        #expect(capability.constraints.max == 5)
        #expect(capability.constraints.expiresAtMilliseconds == 1_893_456_000_000)
        #expect(capability.constraints.approval == .operator)
        #expect(capability.constraints.timeoutMilliseconds == 120_000)
        let model = try Capability(parsing: "capability://model/anthropic:*?action=complete&tokens=100000&rate=10/sec")
        #expect(model.resource.separator == ":")
        #expect(model.constraints.tokens == 100_000)
        #expect(try Capability(parsing: "capability://file/x?action=read&expires=1893456000").constraints.expiresAtMilliseconds
                == 1_893_456_000_000)
    }

    @Test(arguments: [
        ("file/srv?action=read", "starts with 'capability://'"),
        ("capability://?action=read", "no kind"),
        ("capability://fiel/srv?action=read", "unknown capability kind 'fiel'"),
        ("capability://file?action=read", "names its paths"),
        ("capability://file/srv/data", "no action"),
        ("capability://file/srv?action=execute", "'execute' is not a file action: use read, write, list, delete"),
        ("capability://file/srv/../etc?action=read", "'..'"),
        ("capability://file/srv//x?action=read", "empty segment"),
        ("capability://file/srv?action=read&rate=5", "N/sec, N/min or N/hour"),
        ("capability://file/srv?action=read&rate=0/min", "from 1 to 10^12"),
        ("capability://file/srv?action=read&timeout=soon", "timeout=soon"),
        ("capability://file/srv?action=read&max=-1", "whole number from 1"),
        ("capability://file/srv?action=read&expires=tomorrow", "expires=tomorrow"),
        ("capability://file/srv?action=read&approve=anyone", "'operator'"),
        ("capability://file/srv?action=read&budget=5", "unknown parameter 'budget'"),
        ("capability://file/srv?action=read&action=write", "given twice"),
        ("capability://file/srv?action=read&max", "not key=value"),
        ("capability://file/srv?action=read&tokens=5", "tokens is a model constraint"),
        ("capability://shell?action=execute&allowlist=git", "not an absolute program path"),
        ("capability://http/?action=get", "names its host"),
        ("capability://http/api.example.com:99999/?action=get", "port '99999'"),
        ("capability://http/api_x.com/?action=get", "host 'api_x.com'"),
        ("capability://file/a b?action=read", "no spaces"),
        ("capability://agent/../x?action=message", "'..'"),
        // Hostile forms: escaped dots, userinfo, an IPv6 literal, a doubled slash after file:.
        ("capability://file/srv/%2e%2e/etc?action=read", "'..'"),
        ("capability://file/srv/%2E%2E?action=read", "'..'"),
        ("capability://http/user@api.example.com/?action=get", "host 'user@api.example.com'"),
        ("capability://http/[::1]/?action=get", "host '[::1]'"),
        ("capability://file//etc/passwd?action=read", "empty segment"),
        ("capability://file/srv/%ZZ?action=read", "bad %-escape"),
    ])
    func badURIsAreOneLineErrorsThatSayWhatIsWrong(uri: String, expected: String) {
        #expect {
            _ = try Capability(parsing: uri)
        } throws: { error in
            guard let error = error as? CapabilityError else { return false }
            return error.code == .invalidURI && error.message.contains(expected) && !error.message.contains("\n")
        }
    }

    @Test func hostileButValidFormsMeanOnlyWhatTheySay() throws {
        // A trailing slash names the directory itself.
        let dir = try Capability(parsing: "capability://file/srv/data/?action=read")
        #expect(dir.resource.pattern == "/srv/data")
        #expect(dir.covers(action: "read", resource: "/srv/data"))
        #expect(!dir.covers(action: "read", resource: "/srv/data/x"))
        // Host case is folded; an IP literal is a host like any other.
        let upper = try Capability(parsing: "capability://http/API.Example.COM/v1?action=get")
        #expect(upper.covers(action: "get", resource: "api.example.com/v1"))
        let ip = try Capability(parsing: "capability://http/127.0.0.1:8080/**?action=get")
        #expect(ip.covers(action: "get", resource: "127.0.0.1:8080/x"))
        #expect(!ip.covers(action: "get", resource: "127.0.0.10:8080/x"))
        // A look-alike (Cyrillic "е") is another host, never the Latin one.
        let lookalike = try Capability(parsing: "capability://http/\u{0435}xample.com?action=get")
        #expect(!lookalike.covers(action: "get", resource: "example.com/"))
        // Path case is significant.
        let lower = try Capability(parsing: "capability://file/srv/data/**?action=read")
        #expect(!lower.covers(action: "read", resource: "/srv/DATA/x"))
    }

    @Test func asksThatAreNotPlainNamesMatchNothing() throws {
        // A combining mark after "/" is still a separator: * stays in its segment.
        let one = try Capability(parsing: "capability://file/srv/data/*?action=read")
        #expect(!one.covers(action: "read", resource: "/srv/data/x/\u{301}"))
        // http: what a URL parser would read differently is refused.
        let hosts = try Capability(parsing: "capability://http/*.example.com/v1/**?action=get")
        #expect(hosts.covers(action: "get", resource: "api.example.com/v1/x"))
        #expect(!hosts.covers(action: "get", resource: "evil?.example.com/v1/x"))
        #expect(!hosts.covers(action: "get", resource: "api.example.com/v1/../admin"))
        #expect(!hosts.covers(action: "get", resource: "api.example.com/v1/x?y=1"))
        #expect(!hosts.covers(action: "get", resource: "api.example.com/v1/%2e%2e/admin"))
        let noPort = try Capability(parsing: "capability://http/api.example.com?action=get")
        #expect(!noPort.covers(action: "get", resource: "api.example.com:1@evil.com/x"))
        #expect(!noPort.covers(action: "get", resource: "api.example.com:x/"))
        // Other kinds: no empty, "." or ".." segments in an ask.
        let shared = try Capability(parsing: "capability://memory/shared/*?action=read")
        #expect(shared.covers(action: "read", resource: "shared/team"))
        #expect(!shared.covers(action: "read", resource: "shared/.."))
        let tools = try Capability(parsing: "capability://tool/file.*?action=call")
        #expect(!tools.covers(action: "call", resource: "file."))
        // Leading separators go, as the canonical form (read back after a restart) has it.
        let agents = try Capability(parsing: "capability://agent//**?action=spawn")
        #expect(agents.covers(action: "spawn", resource: "team/x"))
        #expect(try Capability(parsing: agents.description) == agents)
    }

    @Test func limitsTooLargeToCompareAreRefused() {
        #expect(throws: CapabilityError.self) { try Capability(parsing: "capability://file/x?action=read&expires=9999999999999999") }
        #expect(throws: CapabilityError.self) { try Capability(parsing: "capability://file/x?action=read&rate=9223372036854775807/hour") }
        #expect(throws: CapabilityError.self) { try Capability(parsing: "capability://file/x?action=read&max=9223372036854775807") }
    }

    @Test func percentEscapesReachTheResource() throws {
        let capability = try Capability(parsing: "capability://file/srv/my%20data/*?action=read")
        #expect(capability.covers(action: "read", resource: "/srv/my data/a"))
        #expect(try Capability(parsing: capability.description) == capability)
    }
}

@Suite("Capability checks")
struct CapabilityCheckTests {
    func grant(_ uri: String) throws -> Capability { try Capability(parsing: uri) }

    @Test func aStarIsOneSegmentAndTwoStarsAreAnyDepth() throws {
        let one = try grant("capability://file/srv/data/*?action=read")
        #expect(one.covers(action: "read", resource: "/srv/data/a.txt"))
        #expect(!one.covers(action: "read", resource: "/srv/data/sub/a.txt"))
        #expect(!one.covers(action: "read", resource: "/srv/data"))
        #expect(!one.covers(action: "read", resource: "/srv/database/x"))
        let any = try grant("capability://file/srv/data/**?action=read")
        #expect(any.covers(action: "read", resource: "/srv/data"))
        #expect(any.covers(action: "read", resource: "/srv/data/sub/deeper/a.txt"))
        #expect(!any.covers(action: "read", resource: "/srv/database"))
        let suffix = try grant("capability://file/srv/**/*.md?action=read")
        #expect(suffix.covers(action: "read", resource: "/srv/a/b/notes.md"))
        #expect(suffix.covers(action: "read", resource: "/srv/notes.md"))
        #expect(!suffix.covers(action: "read", resource: "/srv/a/notes.txt"))
    }

    @Test func onlyTheNamedActionsAreCovered() throws {
        let read = try grant("capability://file/srv/**?action=read")
        #expect(!read.covers(action: "write", resource: "/srv/x"))
        let any = try grant("capability://http/api.example.com?action=request")
        #expect(any.covers(action: "post", resource: "api.example.com/v1/x"))
        let get = try grant("capability://http/api.example.com/v1/**?action=get")
        #expect(get.covers(action: "get", resource: "API.example.com/v1/items"))
        #expect(!get.covers(action: "post", resource: "api.example.com/v1/items"))
        #expect(!get.covers(action: "get", resource: "api.example.com/v2/items"))
    }

    @Test func hostGlobsMatchWholeLabels() throws {
        let subdomains = try grant("capability://http/*.example.com?action=get")
        #expect(subdomains.covers(action: "get", resource: "api.example.com/"))
        #expect(!subdomains.covers(action: "get", resource: "example.com/"))
        #expect(!subdomains.covers(action: "get", resource: "a.b.example.com/"))
        #expect(!subdomains.covers(action: "get", resource: "api.example.com.evil.net/"))
        #expect(!subdomains.covers(action: "get", resource: "apiexample.com/"))
        let deep = try grant("capability://http/**.example.com:443?action=get")
        #expect(deep.covers(action: "get", resource: "a.b.example.com:443/x"))
        #expect(!deep.covers(action: "get", resource: "a.b.example.com:8443/x"))
        #expect(!deep.covers(action: "get", resource: "a.b.example.com/x"))
    }

    @Test func symlinksAndDotDotAreResolvedBeforeMatching() throws {
        let root = NSTemporaryDirectory() + "caps-" + UUID().uuidString
        let allowed = root + "/allowed", secret = root + "/secret"
        try FileManager.default.createDirectory(atPath: allowed, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: secret, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "s".write(toFile: secret + "/key", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: allowed + "/link", withDestinationPath: secret)
        let capability = try grant("capability://file\(root)/allowed/**?action=read,write")
        // As written, both tricks look inside; resolved, neither is.
        #expect(capability.covers(action: "read", resource: allowed + "/link/key"))
        #expect(!capability.covers(action: "read", resource: try FilePaths.canonical(allowed + "/link/key")))
        #expect(!capability.covers(action: "read", resource: try FilePaths.canonical(allowed + "/../secret/key")))
        // A file about to be written: its existing parent is resolved.
        #expect(capability.covers(action: "write", resource: try FilePaths.canonical(allowed + "/new/file.txt")))
        #expect(!capability.covers(action: "write", resource: try FilePaths.canonical(allowed + "/link/new.txt")))
        #expect(throws: CapabilityError.self) { try FilePaths.canonical(allowed + "/missing/../../secret/key") }
        #expect(throws: CapabilityError.self) { try FilePaths.canonical("relative/path") }
    }

    @Test func aLexicalPathLosesEmptyAndDotPartsButNeverResolvesDotDot() {
        #expect(FilePaths.lexical("/srv//data/./in/") == "/srv/data/in")
        #expect(FilePaths.lexical("/") == "/")
        #expect(FilePaths.lexical("//") == "/")
        #expect(FilePaths.lexical("/srv/../etc") == nil)
        #expect(FilePaths.lexical("/srv/..") == nil)
        #expect(FilePaths.lexical("/srv/..data") == "/srv/..data")
    }

    @Test func namesOfOtherKindsUseTheirOwnSeparators() throws {
        let tools = try grant("capability://tool/file.*?action=call")
        #expect(tools.covers(action: "call", resource: "file.read"))
        #expect(!tools.covers(action: "call", resource: "file.read.extra"))
        #expect(!tools.covers(action: "call", resource: "shell.execute"))
        let team = try grant("capability://agent/team/*?action=message")
        #expect(team.covers(action: "message", resource: "team/researcher"))
        #expect(!team.covers(action: "message", resource: "other/researcher"))
        let everyone = try grant("capability://agent?action=spawn")
        #expect(everyone.covers(action: "spawn", resource: "anything/at/all"))
        let models = try grant("capability://model/anthropic:*?action=complete")
        #expect(models.covers(action: "complete", resource: "anthropic:claude-sonnet-4-5"))
        #expect(!models.covers(action: "complete", resource: "openai:gpt-4.1"))
    }

    @Test func expiryIsAMomentInTime() throws {
        let capability = try grant("capability://file/srv?action=read&expires=1893456000")
        #expect(!capability.constraints.hasExpired(atMilliseconds: 1_893_455_999_999))
        #expect(capability.constraints.hasExpired(atMilliseconds: 1_893_456_000_000))
        #expect(!(try grant("capability://file/srv?action=read")).constraints.hasExpired(atMilliseconds: .max))
    }
}

@Suite("Capability delegation")
struct CapabilityDelegationTests {
    func problem(_ parent: String, _ child: String) throws -> String? {
        try Capability(parsing: parent).problem(delegating: Capability(parsing: child))
    }

    @Test func narrowerResourcesFewerActionsAndTighterLimitsAreWithin() throws {
        #expect(try problem("capability://file/srv/**?action=read,write", "capability://file/srv/data/*?action=read") == nil)
        #expect(try problem("capability://file/srv/**?action=read", "capability://file/srv/**?action=read") == nil)
        #expect(try problem("capability://file/srv/*/*.md?action=read", "capability://file/srv/a/*.md?action=read") == nil)
        #expect(try problem("capability://http/**.example.com?action=request", "capability://http/api.example.com/v1/*?action=get") == nil)
        #expect(try problem("capability://shell?action=execute&allowlist=/usr/bin/git,/usr/bin/ls&timeout=1m&rate=10/min",
                            "capability://shell/usr/bin/*?action=execute&allowlist=/usr/bin/git&timeout=10s&rate=1/min") == nil)
        #expect(try problem("capability://model/anthropic:*?action=complete&tokens=1000&expires=1893456000&approve=operator",
                            "capability://model/anthropic:claude-*?action=complete&tokens=10&expires=1800000000&approve=operator") == nil)
    }

    @Test(arguments: [
        ("capability://file/srv/data/*?action=read", "capability://file/srv/**?action=read", "/srv/** is not inside /srv/data/*"),
        ("capability://file/srv/data/*?action=read", "capability://file/srv/data/**?action=read", "not inside"),
        ("capability://file/srv/*.md?action=read", "capability://file/srv/*?action=read", "not inside"),
        ("capability://file/srv/**?action=read", "capability://file/srv/x?action=read,write", "action write is not granted"),
        ("capability://file/srv/**?action=read", "capability://http/srv?action=get", "a http capability cannot come from a file one"),
        ("capability://http/api.example.com?action=get", "capability://http/*.example.com?action=get", "host *.example.com is not inside"),
        ("capability://http/api.example.com:443?action=get", "capability://http/api.example.com?action=get", "port any is not port 443"),
        ("capability://http/api.example.com?action=get", "capability://http/api.example.com?action=request", "action request is not granted"),
        ("capability://file/srv?action=read&timeout=10s", "capability://file/srv?action=read", "must have it too"),
        ("capability://file/srv?action=read&timeout=10s", "capability://file/srv?action=read&timeout=1m", "longer"),
        ("capability://file/srv?action=read&rate=10/min", "capability://file/srv?action=read&rate=1/sec", "rate 1/sec is more than 10/min"),
        ("capability://file/srv?action=read&max=3", "capability://file/srv?action=read&max=4", "max 4 is more than 3"),
        ("capability://shell?action=execute&allowlist=/usr/bin/git", "capability://shell?action=execute&allowlist=/usr/bin/git,/bin/sh", "/bin/sh is not allowed"),
        ("capability://file/srv?action=read&expires=1800000000", "capability://file/srv?action=read&expires=1900000000", "expires after"),
        ("capability://file/srv?action=read&approve=operator", "capability://file/srv?action=read", "approve=operator"),
        ("capability://model/a:*?action=complete&tokens=5", "capability://model/a:*?action=complete&tokens=6", "tokens 6 is more than 5"),
    ])
    func moreThanTheParentIsRefusedWithTheReason(parent: String, child: String, expected: String) throws {
        let reason = try #require(try problem(parent, child))
        #expect(reason.contains(expected), "\(reason)")
    }
}
