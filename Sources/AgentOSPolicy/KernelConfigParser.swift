// agentd's config file (`agentd --config FILE`): YAML, read with the same
// position-keeping reader as policy files, so a mistake is reported as
// file:line:col: field: message.
//
//     version: 1
//     models:
//       secrets_file: /etc/agentos/secrets.env
//       providers:
//         anthropic:
//           kind: anthropic
//           models:
//             claude-sonnet-4-5: {input: 3, output: 15}
//         local:
//           kind: openai-compatible
//           base_url: http://127.0.0.1:8080
//           concurrency: 1

import AgentOSModels
import Foundation
import Yams

/// What agentd's config file says.
public struct KernelConfigFile: Sendable, Equatable {
    public var models: ModelsConfiguration
    /// Where API keys are read from besides the environment (0600, the kernel's own).
    public var secretsFile: String?

    public init(models: ModelsConfiguration = .defaults, secretsFile: String? = nil) {
        self.models = models
        self.secretsFile = secretsFile
    }
}

public enum KernelConfigParser {
    static let topKeys = ["version", "models"]
    static let modelsKeys = ["providers", "secrets_file"]
    static let providerKeys = ["kind", "base_url", "key", "concurrency", "timeout", "retries", "requests_per_minute", "models"]
    static let priceKeys = ["input", "output"]

    /// Reads and checks the config file at `path`.
    public static func parse(contentsOf path: String) throws(PolicyError) -> KernelConfigFile {
        let text: String
        do {
            text = try PolicyParser.read(path)
        } catch {
            throw PolicyError(problems: [PolicyProblem(file: path, line: 0, column: 0, field: "", message: error.description)])
        }
        return try parse(text: text, file: path)
    }

    public static func parse(text: String, file: String) throws(PolicyError) -> KernelConfigFile {
        let log = ProblemLog(file: file)
        let config = check(text: text, log: log)
        guard let config, log.count == 0 else { throw PolicyError(problems: log.sorted) }
        return config
    }

    private static func check(text: String, log: ProblemLog) -> KernelConfigFile? {
        let node: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else { return KernelConfigFile() }
            node = composed
        } catch {
            PolicyParser.reportSyntax(error, text: text, to: log)
            return nil
        }
        let values = ValueReader(log: log)
        guard let top = MappingReader(node, .top, values: values, expected: "a mapping with version: and models:",
                                      allowed: topKeys) else { return nil }
        top.require("version", "missing: add 'version: 1' at the top")
        if let version = top.integer("version"), version != 1 {
            log.report(top.markOf("version"), .top.key("version"), "unsupported version \(version): this release reads version 1")
        }
        var config = KernelConfigFile()
        guard let models = top.mapping("models", expected: "a mapping with providers:", allowed: modelsKeys) else { return config }
        if let secrets = models.text("secrets_file") {
            if secrets.hasPrefix("/") {
                config.secretsFile = secrets
            } else {
                log.report(models.markOf("secrets_file"), models.path.key("secrets_file"), "must be an absolute path, not '\(secrets)'")
            }
        }
        guard let providers = models.value("providers") else { return config }
        guard case .mapping(let mapping) = providers else {
            log.report(providers.mark, models.path.key("providers"), "expected a mapping of provider names, found \(providers.found)")
            return config
        }
        var settings: [String: ProviderSettings] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else { continue }
            let name = scalar.string
            let path = models.path.key("providers").key(name)
            guard ModelName.isProviderName(name) else {
                log.report(key.mark, path, "provider name '\(name)' must be lower-case letters, digits, '-' or '_'")
                continue
            }
            if let provider = self.provider(name, value, path, values: values) { settings[name] = provider }
        }
        config.models = ModelsConfiguration(providers: settings)
        return config
    }

    private static func provider(_ name: String, _ node: Node, _ path: FieldPath, values: ValueReader) -> ProviderSettings? {
        let log = values.log
        guard let reader = MappingReader(node, path, values: values, expected: "a mapping with kind:", allowed: providerKeys) else {
            return nil
        }
        let kind: ProviderKind?
        if reader.has("kind") {
            kind = reader.choice("kind", ProviderKind.self)
        } else if let implied = ProviderKind(rawValue: name) {
            kind = implied
        } else {
            reader.require("kind", "missing: one of \(ProviderKind.allCases.map(\.rawValue).joined(separator: ", "))")
            kind = nil
        }
        guard let kind else { return nil }
        var baseURL = reader.text("base_url")
        if let url = baseURL {
            let trimmed = url.hasSuffix("/") ? String(url.dropLast()) : url
            if let parsed = URL(string: trimmed), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil,
               parsed.query == nil, parsed.fragment == nil, parsed.user == nil, parsed.password == nil {
                baseURL = trimmed
            } else {
                log.report(reader.markOf("base_url"), path.key("base_url"),
                           "expected http(s)://host[:port][/prefix] (no user:password@: keys go in the secrets file)")
            }
        } else if kind.defaultBaseURL == nil {
            reader.require("base_url", "missing: an \(kind.rawValue) provider needs the server's base URL (e.g. http://127.0.0.1:8080)")
        }
        var keyName: String?? = nil
        if let key = reader.text("key") {
            if key == "none" {
                keyName = .some(nil)
            } else if !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }) {
                keyName = .some(key)
            } else {
                log.report(reader.markOf("key"), path.key("key"),
                           "expected the NAME of the environment variable or secrets entry holding the key (A-Z, 0-9, _), or none — never the key itself")
            }
        }
        var settings = ProviderSettings(name: name, kind: kind, baseURL: baseURL, keyName: keyName)
        if let concurrency = reader.integer("concurrency") {
            if (1...1_000).contains(concurrency) { settings.concurrency = concurrency } else {
                log.report(reader.markOf("concurrency"), path.key("concurrency"), "must be 1-1000, not \(concurrency)")
            }
        }
        if let timeout = reader.duration("timeout") {
            if timeout >= 100 && timeout <= 3_600_000 { settings.timeoutMilliseconds = timeout } else {
                log.report(reader.markOf("timeout"), path.key("timeout"), "must be 100ms-1h")
            }
        }
        if let retries = reader.integer("retries") {
            if (0...10).contains(retries) { settings.retries = retries } else {
                log.report(reader.markOf("retries"), path.key("retries"), "must be 0-10, not \(retries)")
            }
        }
        if let rate = reader.integer("requests_per_minute") {
            if rate >= 1 { settings.requestsPerMinute = rate } else {
                log.report(reader.markOf("requests_per_minute"), path.key("requests_per_minute"), "must be at least 1, not \(rate)")
            }
        }
        if let models = reader.value("models") {
            settings.models = self.models(models, path.key("models"), values: values)
        }
        return settings
    }

    /// `MODEL: {input: USD, output: USD}` (per million tokens), or `MODEL: {}` without a price.
    private static func models(_ node: Node, _ path: FieldPath, values: ValueReader) -> [String: ModelPrice?] {
        guard case .mapping(let mapping) = node else {
            values.log.report(node.mark, path, "expected a mapping of model names to prices, found \(node.found)")
            return [:]
        }
        var models: [String: ModelPrice?] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else { continue }
            let model = scalar.string
            let modelPath = path.key(model)
            if value.isNull {
                models[model] = .some(nil)
                continue
            }
            guard let price = MappingReader(value, modelPath, values: values, expected: "a mapping with input: and output: (USD per million tokens)",
                                            allowed: priceKeys) else { continue }
            let input = price.number("input"), output = price.number("output")
            if price.has("input") != price.has("output") {
                values.log.report(price.mark, modelPath, "give both input: and output: prices, or neither")
            }
            for (field, amount) in [("input", input), ("output", output)] {
                if let amount, amount < 0 { values.log.report(price.markOf(field), modelPath.key(field), "must not be negative") }
            }
            if let input, let output { models[model] = ModelPrice(input: input, output: output) } else { models[model] = .some(nil) }
        }
        return models
    }
}
