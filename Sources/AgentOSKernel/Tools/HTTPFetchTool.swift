import AgentOSCapabilities
import AgentOSTools
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// http.fetch, performed by the kernel (agents have no network): the URL's
/// `host:port/path` is checked as `http METHOD` against the agent's grants
/// before anything is sent, and so is every redirect before it is followed
/// (each hop a use of its grant, so `rate` and `max` count hops). The
/// response is cut at `max_bytes` and the whole fetch at its time limit.
/// The host is resolved once per hop and the connection made to the
/// address vetted (the name kept for TLS), so a second DNS answer cannot
/// lead elsewhere; a name that does not resolve is refused. A host that
/// resolves to a loopback or link-local address (the kernel's own
/// services, a cloud metadata endpoint) is refused unless the grant that
/// allowed it names that host literally. A redirect whose grant needs an
/// operator's approval is not followed.
struct HTTPFetchTool {
    let services: KernelServices
    let agentID: String
    let agentName: String

    static let maximumRedirects = 5
    static let defaultTimeoutMilliseconds: Int64 = 30_000

    /// A URL as the check sees it.
    struct Target: Sendable {
        let url: URL
        let host: String
        let port: Int
        let path: String
        let secure: Bool

        /// `host:port/path`, as an http ask names it: a trailing slash is
        /// the dir itself (`/docs/` is checked as `/docs`).
        var resource: String {
            let checked = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
            return "\(host):\(port)\(checked)"
        }
    }

    static func target(_ text: String) throws(KernelError) -> Target {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let rawHost = components.host, !rawHost.isEmpty,
              let url = components.url else {
            throw KernelError(.invalidArgument, "http.fetch: '\(text)' is not an http or https URL")
        }
        guard components.user == nil, components.password == nil else {
            throw KernelError(.invalidArgument, "http.fetch: a URL with user info is refused (send credentials in a header)")
        }
        let host = rawHost.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let secure = scheme == "https"
        let port = components.port ?? (secure ? 443 : 80)
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        guard path.hasPrefix("/"), !path.contains("%"), !path.contains(";") else {
            throw KernelError(.invalidArgument,
                              "http.fetch: the path of '\(text)' has %-escapes or ';': capability checks take plain paths only")
        }
        return Target(url: url, host: host, port: port, path: path, secure: secure)
    }

    /// The fetch, hop by hop, each checked; `first` is the first hop's grant.
    func fetch(_ arguments: ToolArguments, first: Target, firstGrant: String,
               timeoutMilliseconds: Int64) async throws -> (JSONValue, Bool) {
        let method = (arguments.string("method") ?? "GET").uppercased()
        let limit = Int(arguments.integer("max_bytes") ?? Int64(BuiltinTools.readLimit))
        var deadline = NIODeadline.now() + .milliseconds(timeoutMilliseconds)
        var headers = HTTPHeaders()
        for line in arguments.strings("headers") ?? [] {
            guard let colon = line.firstIndex(of: ":") else {
                throw KernelError(.invalidArgument, "http.fetch: header '\(line)' is not 'Name: value'")
            }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) }),
                  !value.contains(where: { $0 == "\r" || $0 == "\n" }) else {
                throw KernelError(.invalidArgument, "http.fetch: header '\(line)' is not a valid header")
            }
            if ["host", "content-length", "transfer-encoding", "connection"].contains(name.lowercased()) {
                throw KernelError(.invalidArgument, "http.fetch: the kernel sets the \(name) header itself")
            }
            headers.add(name: name, value: value)
        }
        let body = arguments.string("body").map { Array($0.utf8) }

        var target = first
        var grant = firstGrant
        var hops: [JSONValue] = []
        var currentMethod = method
        var currentBody = body
        for hop in 0...Self.maximumRedirects {
            let address = try await vettedAddress(target, grant: grant)
            var request = HTTPClientRequest(url: target.url.absoluteString)
            request.method = HTTPMethod(rawValue: currentMethod)
            request.headers = headers
            if let currentBody { request.body = .bytes(currentBody) }
            // This hop's client connects to the address vetted, whatever DNS says now.
            var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow,
                                                         timeout: .init(connect: .seconds(10), read: .seconds(60)))
            configuration.dnsOverride = [target.host: address]
            let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
            defer { Task { try? await client.shutdown() } }
            let response = try await client.execute(request, deadline: deadline)
            let status = Int(response.status.code)
            if (300..<400).contains(status), [301, 302, 303, 307, 308].contains(status),
               let location = response.headers.first(name: "location") {
                // Not followed before its own check: a redirect cannot lead where the agent may not go.
                guard hop < Self.maximumRedirects else {
                    return failure("more than \(Self.maximumRedirects) redirects", url: target.url, hops: hops)
                }
                guard let next = URL(string: location, relativeTo: target.url)?.absoluteURL else {
                    return failure("a redirect to '\(location)', which is not a URL", url: target.url, hops: hops)
                }
                hops.append(.object(["status": .integer(Int64(status)), "location": .string(next.absoluteString)]))
                let nextTarget = try Self.target(next.absoluteString)
                if status == 303 || ((status == 301 || status == 302) && currentMethod == "POST") {
                    currentMethod = "GET"
                    currentBody = nil
                }
                let action = currentMethod.lowercased()
                switch services.capabilities.check(agentID: agentID, agentName: agentName, kind: .http, action: action,
                                                   resource: nextTarget.resource) {
                case .denied(let reasons):
                    throw KernelError(.permissionDenied, "http.fetch: redirected to \(nextTarget.url.absoluteString), "
                        + "which needs http \(action) on \(nextTarget.resource): " + reasons.joined(separator: "; "))
                case .allowed(let id, let approval):
                    // An operator approved the first hop, not this one: no silent way around the gate.
                    guard !approval else {
                        return failure("a redirect to \(nextTarget.url.absoluteString), whose grant \(id) needs an "
                                           + "operator's approval: not followed (fetch that URL itself)",
                                       url: target.url, hops: hops)
                    }
                    grant = id
                    if let limit = services.capabilities.grant(id: id)?.capability.constraints.timeoutMilliseconds {
                        deadline = min(deadline, NIODeadline.now() + .milliseconds(limit))
                    }
                }
                // A redirect from https to http would send in clear what was meant for TLS.
                if target.secure && !nextTarget.secure {
                    return failure("a redirect from https to http (\(nextTarget.url.absoluteString)) is not followed",
                                   url: target.url, hops: hops)
                }
                target = nextTarget
                continue
            }
            var collected: [UInt8] = []
            var total = 0
            for try await chunk in response.body {
                total += chunk.readableBytes
                let room = limit - collected.count
                if room > 0 { collected += chunk.readableBytesView.prefix(room) }
                if total > limit { break }   // cut: the rest is not read
            }
            var headerObject: [String: JSONValue] = [:]
            for (name, value) in response.headers {
                let key = name.lowercased()
                if case .string(let earlier) = headerObject[key] {
                    headerObject[key] = .string(earlier + ", " + value)
                } else {
                    headerObject[key] = .string(value)
                }
            }
            var result: [String: JSONValue] = [
                "url": .string(target.url.absoluteString), "status": .integer(Int64(status)),
                "headers": .object(headerObject), "truncated": .bool(total > limit), "redirects": .array(hops),
            ]
            if let text = String(validating: collected, as: UTF8.self) {
                result["body"] = .string(text)
                result["encoding"] = .string("utf-8")
            } else {
                result["body"] = .string(Data(collected).base64EncodedString())
                result["encoding"] = .string("base64")
            }
            return (.object(result), status >= 400)
        }
        return failure("more than \(Self.maximumRedirects) redirects", url: target.url, hops: hops)
    }

    private func failure(_ message: String, url: URL, hops: [JSONValue]) -> (JSONValue, Bool) {
        (.object(["url": .string(url.absoluteString), "error": .string(message), "redirects": .array(hops)]), true)
    }

    /// The address to connect to: resolved here (on NIO's blocking pool,
    /// not the tasks' threads), loopback and link-local ones only for a
    /// grant that names the host itself.
    private func vettedAddress(_ target: Target, grant: String) async throws -> String {
        let host = target.host
        let addresses = try await NIOThreadPool.singleton.runIfActive { Self.resolve(host) }
        guard let first = addresses.first else {
            throw KernelError(.invalidArgument, "http.fetch: \(host) does not resolve")
        }
        let namesHost = services.capabilities.grant(id: grant).map { grant in
            grant.capability.host.map { !$0.pattern.contains("*") && $0.pattern == host } ?? false
        } ?? false
        if !namesHost, let reserved = addresses.first(where: Self.isInternal) {
            throw KernelError(.permissionDenied,
                              "http.fetch: \(host) resolves to \(reserved), a loopback or link-local address; "
                                  + "only a grant naming \(host) itself (no wildcard) may reach it")
        }
        return first
    }

    static func resolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(list) }
        var addresses: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0,
                           NI_NUMERICHOST) == 0 {
                addresses.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            cursor = entry.pointee.ai_next
        }
        return addresses
    }

    /// 127/8, ::1, 169.254/16, fe80::/10, 0.0.0.0, ::, and v4-mapped forms of them.
    static func isInternal(_ address: String) -> Bool {
        let lower = address.lowercased()
        let v4 = lower.hasPrefix("::ffff:") ? String(lower.dropFirst(7)) : lower
        if v4.hasPrefix("127.") || v4.hasPrefix("169.254.") || v4 == "0.0.0.0" { return true }
        return lower == "::1" || lower == "::" || lower.hasPrefix("fe8") || lower.hasPrefix("fe9")
            || lower.hasPrefix("fea") || lower.hasPrefix("feb")
    }
}
