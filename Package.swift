// swift-tools-version: 6.0
//
// Agent OS: a microkernel (agentd) that runs AI agents as confined,
// supervised child processes, and the operator CLI (agentctl).
// Module boundaries follow ARCHITECTURE §9; dependencies point one way:
// protocol < confinement / store / supervision < policy < kernel < executables.

import PackageDescription

let package = Package(
    name: "AgentOS",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "agentd", targets: ["agentd"]),
        .executable(name: "agentctl", targets: ["agentctl"]),
        .executable(name: "agentos-bench", targets: ["agentos-bench"]),
        .executable(name: "agentos-demo-agent", targets: ["agentos-demo-agent"]),
        .executable(name: "agentos-sandbox", targets: ["agentos-sandbox"]),
        .executable(name: "agentos-file-tool", targets: ["agentos-file-tool"]),
        .library(name: "AgentOSClient", targets: ["AgentOSClient"]),
        // The Swift SDK: what an agent program imports to talk to the kernel.
        .library(name: "AgentKit", targets: ["AgentKit"]),
        .executable(name: "agentos-example-planner", targets: ["agentos-example-planner"]),
        .executable(name: "agentos-llm-agent", targets: ["agentos-llm-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk.git", from: "0.12.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // C: everything that must run between clone and exec, and the few
        // Linux calls Swift's Glibc overlay does not expose cleanly.
        .target(name: "CAgentOSShim"),
        // libseccomp, found through pkg-config (Debian: libseccomp-dev).
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        // Compiles seccomp profiles to BPF with libseccomp (once per profile).
        .target(name: "CAgentOSSeccomp", dependencies: ["CSeccomp"]),

        // The wire contract: frames, the generated protobuf messages, versions.
        .target(
            name: "AgentOSProtocol",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Proto", "PROTOCOL.md"]
        ),

        // Durable state: agents, their history, the event log (SQLite, WAL).
        .target(
            name: "AgentOSStore",
            dependencies: [.product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto")]
        ),

        // Child processes: the spawner thread, pidfd reaping, later the sandbox.
        .target(
            name: "AgentOSConfinement",
            dependencies: [
                "CAgentOSShim", "CAgentOSSeccomp",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Capabilities: the URI form, what a grant covers, what a delegation
        // may narrow. Pure: the kernel's table holds and enforces them.
        .target(name: "AgentOSCapabilities", dependencies: ["AgentOSProtocol"]),

        // Tools: the registry's definitions, their parameter schemas and the
        // check of a call's arguments. Pure: the kernel runs them.
        .target(name: "AgentOSTools", dependencies: ["AgentOSCapabilities"]),

        // Models: each provider's wire format (requests, answers, streams,
        // errors), model names, provider settings, back-off. Pure: the
        // kernel's gateway does the HTTP.
        .target(name: "AgentOSModels", dependencies: ["AgentOSTools"]),

        // Scheduling: the fair priority queue (aging, fair share between
        // policies) that model calls and goals wait in. Pure.
        .target(name: "AgentOSScheduling"),

        // The kernel's MCP client: sessions with MCP servers over their stdio
        // (modelcontextprotocol/swift-sdk's client, a transport of our own).
        .target(
            name: "AgentOSMCP",
            dependencies: [
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // OTP supervision as a pure state machine: specs, events in, actions
        // out, an injected clock. No processes, no I/O, no dependencies.
        .target(name: "AgentOSSupervision"),

        // Policy files (YAML): parsed with positions, validated, turned
        // into supervision specs and launch settings.
        .target(
            name: "AgentOSPolicy",
            dependencies: ["AgentOSSupervision", "AgentOSProtocol", "AgentOSCapabilities", "AgentOSTools", "AgentOSModels",
                           .product(name: "Yams", package: "Yams")]
        ),

        // The kernel: socket server, lifecycle, events, logs; wires the rest.
        .target(
            name: "AgentOSKernel",
            dependencies: [
                "AgentOSProtocol", "AgentOSStore", "AgentOSConfinement", "AgentOSSupervision", "AgentOSPolicy",
                "AgentOSCapabilities", "AgentOSTools", "AgentOSMCP", "AgentOSModels", "AgentOSScheduling", "CAgentOSShim",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // A small blocking client of the kernel socket (agentctl, benchmarks, tests).
        .target(
            name: "AgentOSClient",
            dependencies: ["AgentOSProtocol"]
        ),

        // The Swift SDK for agents: async calls and streams over the socket
        // the kernel gave the agent (one reader thread, no event loop).
        .target(
            name: "AgentKit",
            dependencies: ["AgentOSProtocol", "AgentOSClient", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),

        // Command implementations; the executables only call main().
        .target(
            name: "AgentdCommand",
            dependencies: [
                "AgentOSKernel", "AgentOSPolicy", "CAgentOSShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "AgentCtlCommands",
            dependencies: [
                "AgentOSClient", "AgentOSProtocol", "AgentOSPolicy", "CAgentOSShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "agentd", dependencies: ["AgentdCommand"]),
        .executableTarget(name: "agentctl", dependencies: ["AgentCtlCommands"]),
        // The helper agentd execs first for every agent: namespaces, the
        // private root, the agent's own uid, no capabilities (C, single-threaded).
        .executableTarget(
            name: "agentos-sandbox",
            // Plain C, exec'd for every agent: the link step adds the Swift
            // runtime to every product, and loading libswiftCore.so at each
            // exec cost ~1 ms; linked statically it costs nothing at start.
            linkerSettings: [.unsafeFlags(["-static-stdlib"])]
        ),
        // What the file.* tools run inside their sandbox (C, like the helper).
        .executableTarget(name: "agentos-file-tool", linkerSettings: [.unsafeFlags(["-static-stdlib"])]),
        // A small agent that speaks the protocol (demo and integration tests).
        .executableTarget(name: "agentos-demo-agent", dependencies: ["AgentOSClient", "AgentOSProtocol"]),
        // The Swift half of the example team (Policies/examples/duo.yaml);
        // static, so the policy can name it without the toolchain's libraries.
        .executableTarget(
            name: "agentos-example-planner",
            dependencies: ["AgentKit"],
            // Foundation's own C libraries are not named by -static-stdlib.
            linkerSettings: [.unsafeFlags(["-static-stdlib", "-lCoreFoundation", "-l_FoundationICU", "-l_FoundationCShims",
                                           "-l_FoundationCollections", "-lstdc++"])]
        ),
        // The built-in LLM agent: goal in, model ↔ tools through the kernel, result out.
        .executableTarget(name: "agentos-llm-agent", dependencies: ["AgentKit"],
                          linkerSettings: [.unsafeFlags(["-static-stdlib", "-lCoreFoundation", "-l_FoundationICU",
                                                         "-l_FoundationCShims", "-l_FoundationCollections", "-lstdc++"])]),
        .executableTarget(
            name: "agentos-bench",
            dependencies: [
                "AgentOSClient", "AgentOSProtocol", "AgentOSConfinement", "CAgentOSShim", "AgentKit", "ModelProviderFake",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // A fake model provider for tests and benchmarks: answers as the Anthropic, OpenAI and Ollama APIs document.
        .target(name: "ModelProviderFake", dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")], path: "Tests/ModelProviderFake"),
        .testTarget(name: "AgentOSProtocolTests", dependencies: ["AgentOSProtocol"]),
        .testTarget(name: "AgentOSStoreTests", dependencies: ["AgentOSStore"]),
        .testTarget(name: "AgentOSConfinementTests", dependencies: ["AgentOSConfinement"]),
        .testTarget(name: "AgentOSSupervisionTests", dependencies: ["AgentOSSupervision"]),
        .testTarget(name: "AgentOSCapabilitiesTests", dependencies: ["AgentOSCapabilities"]),
        .testTarget(name: "AgentOSToolsTests", dependencies: ["AgentOSTools"]),
        .testTarget(name: "AgentOSModelsTests", dependencies: ["AgentOSModels", "AgentOSTools", "ModelProviderFake"]),
        .testTarget(
            name: "AgentOSMCPTests",
            dependencies: ["AgentOSMCP", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(name: "AgentOSPolicyTests", dependencies: ["AgentOSPolicy", "AgentOSModels"]),
        .testTarget(name: "AgentOSSchedulingTests", dependencies: ["AgentOSScheduling"]),
        .testTarget(
            name: "AgentOSKernelTests",
            dependencies: [
                "AgentOSKernel", "AgentOSClient", "AgentOSModels",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "AgentCtlCommandsTests", dependencies: ["AgentCtlCommands"]),
        .testTarget(name: "AgentKitTests", dependencies: ["AgentKit", "AgentOSProtocol"]),
        // End-to-end: the real agentd and agentctl binaries, as a user runs them.
        .testTarget(
            name: "IntegrationTests",
            // AgentOSConfinement only to read and put back host cgroup mount options.
            dependencies: ["AgentOSClient", "AgentOSProtocol", "AgentOSConfinement", "ModelProviderFake"],
            path: "Integration/Tests",
            exclude: ["Escapes"]   // hostile C programs, compiled by the tests with the system cc
        ),
    ],
    swiftLanguageModes: [.v6]
)
