import AgentOSConfinement
import Foundation
import Logging

/// The seccomp profiles agents can be run under, compiled to BPF once at
/// start (into the state dir); a profile that does not parse is reported
/// when someone asks for it, and "default" must compile or agentd refuses
/// to start: no agent ever runs without a filter.
struct SeccompProfiles: Sendable {
    let compiled: [String: String]      // name -> BPF file
    let filters: [String: [UInt8]]      // name -> the BPF itself (a held sandbox gets it in its request)
    let broken: [String: String]        // name -> why

    static func compile(from directory: String, into output: String, logger: Logger) throws(KernelError) -> SeccompProfiles {
        try makeDirectories(output, mode: 0o755)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
        var compiled: [String: String] = [:], broken: [String: String] = [:], filters: [String: [UInt8]] = [:]
        for name in names {
            do {
                let profile = try SeccompProfile.load(path: directory + "/" + name + ".json")
                let path = output + "/" + name + ".bpf"
                let skipped = try profile.compile(to: path)
                guard let bytes = FileManager.default.contents(atPath: path) else {
                    broken[name] = "cannot read back \(path)"
                    continue
                }
                compiled[name] = path
                filters[name] = [UInt8](bytes)
                if skipped > 0 { logger.debug("seccomp profile \(name): \(skipped) syscall(s) unknown on this architecture") }
            } catch {
                broken[name] = error.message
                logger.warning("seccomp profile \(name) unusable: \(error.message)")
            }
        }
        guard compiled["default"] != nil else {
            throw KernelError(.invalidArgument, broken["default"]
                ?? "no seccomp profile 'default' in \(directory): agents never run without one (see --policies)")
        }
        return SeccompProfiles(compiled: compiled, filters: filters, broken: broken)
    }

    /// The BPF of a profile `path(for:)` accepted.
    func filter(for name: String) -> [UInt8] { filters[name] ?? [] }

    func path(for name: String) throws(KernelError) -> String {
        if let path = compiled[name] { return path }
        if let reason = broken[name] { throw KernelError(.invalidArgument, "seccomp profile '\(name)': \(reason)") }
        throw KernelError(.invalidArgument,
                          "no seccomp profile '\(name)' (available: \(compiled.keys.sorted().joined(separator: ", ")))")
    }
}
