import CAgentOSSeccomp
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A seccomp profile as written in Policies/seccomp/NAME.json: what is
/// allowed (everything else fails with `default_errno`), what fails with
/// another errno, what is allowed only with certain arguments, and ioctl
/// requests refused. Other ABIs (x32, i386) are always killed.
public struct SeccompProfile: Sendable, Decodable {
    public struct ErrnoRule: Sendable, Decodable {
        public let syscall: String
        public let errno: String
    }

    public struct Argument: Sendable, Decodable {
        public let index: UInt32
        public let mask: String?
        public let equals: String
    }

    public struct ConditionalRule: Sendable, Decodable {
        public let syscall: String
        public let args: [Argument]
    }

    public let defaultErrno: String
    public let allow: [String]
    public let errno: [ErrnoRule]?
    public let allowIf: [ConditionalRule]?
    public let ioctlDeny: [String]?

    enum CodingKeys: String, CodingKey {
        case defaultErrno = "default_errno", allow, errno, allowIf = "allow_if", ioctlDeny = "ioctl_deny"
    }

    /// Reads and checks a profile file; errors name the file and the field.
    public static func load(path: String) throws(ConfinementError) -> SeccompProfile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfinementError(.invalidSpec, "seccomp profile \(path) cannot be read")
        }
        let profile: SeccompProfile
        do {
            profile = try JSONDecoder().decode(SeccompProfile.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ConfinementError(.invalidSpec, "seccomp profile \(path): missing field '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ConfinementError(.invalidSpec, "seccomp profile \(path): wrong type at '\(field)'")
        } catch {
            throw ConfinementError(.invalidSpec, "seccomp profile \(path) does not parse: \(error)")
        }
        _ = try profile.errnoValue(profile.defaultErrno, field: "default_errno", path: path)
        for rule in profile.errno ?? [] { _ = try profile.errnoValue(rule.errno, field: "errno", path: path) }
        for rule in profile.allowIf ?? [] {
            guard (1...2).contains(rule.args.count) else {
                throw ConfinementError(.invalidSpec, "seccomp profile \(path): allow_if for \(rule.syscall) needs 1 or 2 args")
            }
            for argument in rule.args {
                guard argument.index < 6, Self.number(argument.equals) != nil,
                      argument.mask.map({ Self.number($0) != nil }) ?? true else {
                    throw ConfinementError(.invalidSpec,
                                           "seccomp profile \(path): bad argument in allow_if for \(rule.syscall) (index 0-5, numbers as \"16\" or \"0x10\")")
                }
            }
        }
        for request in profile.ioctlDeny ?? [] where Self.number(request).map({ $0 <= 0xffff_ffff }) != true {
            throw ConfinementError(.invalidSpec, "seccomp profile \(path): bad ioctl_deny request '\(request)'")
        }
        return profile
    }

    static func number(_ text: String) -> UInt64? {
        text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
    }

    static let errnoNames: [String: Int32] = ["EPERM": EPERM, "EACCES": EACCES, "ENOSYS": ENOSYS, "EINVAL": EINVAL]

    func errnoValue(_ name: String, field: String, path: String) throws(ConfinementError) -> Int32 {
        guard let value = Self.errnoNames[name] else {
            throw ConfinementError(.invalidSpec,
                                   "seccomp profile \(path): \(field) '\(name)' is not one of \(Self.errnoNames.keys.sorted().joined(separator: ", "))")
        }
        return value
    }

    /// Compiles to BPF at `output`; returns how many named syscalls this
    /// architecture does not have (they are skipped).
    @discardableResult
    public func compile(to output: String) throws(ConfinementError) -> Int {
        var names: [UnsafeMutablePointer<CChar>?] = []
        defer { for name in names { free(name) } }
        var rules: [aos_seccomp_rule] = []
        func add(_ syscall: String, _ action: aos_seccomp_action, errno value: Int32 = 0, _ arguments: [aos_seccomp_arg] = []) {
            let name = strdup(syscall)
            names.append(name)
            var rule = aos_seccomp_rule()
            rule.syscall = UnsafePointer(name)
            rule.action = action
            rule.errno_value = value
            rule.arg_count = UInt32(arguments.count)
            if arguments.count > 0 { rule.args.0 = arguments[0] }
            if arguments.count > 1 { rule.args.1 = arguments[1] }
            rules.append(rule)
        }
        for syscall in allow where syscall != "ioctl" { add(syscall, AOS_SECCOMP_ALLOW) }
        for rule in errno ?? [] { add(rule.syscall, AOS_SECCOMP_ERRNO, errno: Self.errnoNames[rule.errno] ?? EPERM) }
        for rule in allowIf ?? [] {
            add(rule.syscall, AOS_SECCOMP_ALLOW, rule.args.map { argument in
                var cmp = aos_seccomp_arg()
                cmp.index = argument.index
                cmp.value = Self.number(argument.equals) ?? 0
                if let mask = argument.mask.flatMap(Self.number) {
                    cmp.op = AOS_SECCOMP_MASKED_EQ
                    cmp.mask = mask
                } else {
                    cmp.op = AOS_SECCOMP_EQ
                }
                return cmp
            })
        }
        let ioctl = (ioctlDeny ?? []).compactMap { Self.number($0).map { UInt32(truncatingIfNeeded: $0) } }
        var skipped: Int32 = 0
        var message = [CChar](repeating: 0, count: 512)
        let rc = rules.withUnsafeBufferPointer { buffer in
            ioctl.withUnsafeBufferPointer { ioctlBuffer in
                aos_seccomp_compile(Self.errnoNames[defaultErrno] ?? EPERM, buffer.baseAddress, Int32(buffer.count),
                                    ioctlBuffer.baseAddress, Int32(ioctlBuffer.count), output, &skipped,
                                    &message, Int32(message.count))
            }
        }
        guard rc == 0 else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ConfinementError(.invalidSpec, "seccomp profile cannot be compiled: \(text)")
        }
        return Int(skipped)
    }
}
