// Every key a policy file may use, per kind of mapping. The parser rejects
// anything else, and a test holds the JSON Schema to exactly these lists.

enum PolicyKeys {
    /// The top of the document.
    static let document = ["version", "name", "supervisor"]

    /// A supervisor's flags and its children (or template).
    static let supervisor = ["strategy", "intensity", "period", "auto_shutdown", "children", "template", "max_children",
                             "budget"]

    /// Keys of a child that any child may have.
    static let childCommon = ["id", "restart", "shutdown", "significant", "backoff"]
    /// Keys only a worker (a child with `program:`) may have.
    static let workerOnly = ["program", "args", "env", "workdir", "sandbox", "capabilities", "success_exit_codes",
                             "no_restart_exit_codes", "readiness", "start_timeout", "mcp_server", "llm", "budget"]
    /// Keys only a nested supervisor (a child with `supervisor:`) may have.
    static let supervisorChildOnly = ["supervisor", "restart_on_escalation"]
    static let child = childCommon + workerOnly + supervisorChildOnly

    /// A worker's confinement, named as `agentctl run` names its flags.
    static let sandbox = ["memory", "pids", "cpu", "timeout", "ro", "rw", "tmp_size", "net", "seccomp"]

    /// A model budget (a worker's, or a supervisor's for its whole subtree).
    static let budget = ["tokens", "cost", "requests_per_minute"]

    /// A worker run by the built-in LLM agent.
    static let llm = ["model", "system_prompt", "tools", "max_steps", "max_tokens", "stream"]

    /// A child's restart back-off.
    static let backoff = ["initial", "max", "steps"]

    /// Capability kinds (ARCHITECTURE §6).

    /// The PATH bare program names are looked up in.
    static let systemPath = ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
}
