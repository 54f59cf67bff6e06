#!/usr/bin/env python3
"""The writer of the demo duo: answers each request {"item": i, "text": ...}
with {"item", "summary", "words"}, kept in the shared memory "shared/duo".

Order per request: work, memory.put, save_checkpoint, respond, ack. A crash
before the ack makes the kernel deliver the request again after the restart;
the checkpoint's id list then says it was done, and the stored result is
sent again instead of redoing the work.
"""
import os
import sys
import time
from pathlib import Path

try:
    import agentkit
except ImportError:  # run from the source tree: Sources/AgentKitPython/src
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent.parent / "Sources/AgentKitPython/src"))
    import agentkit

SCOPE = "shared/duo"
WORK_SECONDS = float(os.environ.get("WRITER_WORK_SECONDS", "0.3"))


def say(text):
    print(f"writer: {text}", flush=True)


def main():
    agent = agentkit.connect()
    state = agent.load_checkpoint_json() or {"handled": 0, "ids": []}
    resumed = state["handled"]
    say(f"{agent.identity} started (resumed from checkpoint: {resumed} done)")
    if os.environ.get("AGENTOS_CHILD_PATH"):  # under a supervisor with readiness notify
        agent.ready()
        say("ready")

    def handle(message):
        request = message.json()
        item = int(request["item"])  # the Swift planner sends it as a string
        key = f"item-{item}"
        if message.id in state["ids"]:
            # Done before a crash that came before the ack: answer from memory.
            stored = agent.memory.get(key, scope=SCOPE)
            if stored is not None:
                say(f"item {item} was done before the restart: answering from memory")
                return stored.json()
        say(f"working on item {item}")
        time.sleep(WORK_SECONDS)
        text = str(request.get("text", ""))
        result = {"item": item, "summary": text.upper()[:60], "words": len(text.split())}
        agent.memory.put(key, result, scope=SCOPE)
        say(f"stored {SCOPE}/{key}")
        state["handled"] += 1
        state["ids"] = (state["ids"] + [message.id])[-100:]  # the last 100 are enough
        agent.save_checkpoint(state)
        say(f"handled item {item} (resumed from checkpoint: {resumed} done)")
        return result  # serve() responds with it, then acks the request

    def other(message):
        say(f"ignored a {message.type} from {message.sender}")

    agent.serve(handle, on_message=other)
    say("the mailbox stream ended; exiting")


if __name__ == "__main__":
    main()
