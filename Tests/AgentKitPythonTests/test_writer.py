"""Policies/examples/agents/writer.py, run as a real process on a socketpair
with the fake kernel: the order of its calls, and its resume after a crash."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import agentkit
from agentkit._proto import pb
from fake_kernel import Err, FakeKernel

REPO = Path(__file__).resolve().parents[2]
WRITER = REPO / "Policies" / "examples" / "agents" / "writer.py"


def _run_writer(checkpoint: pb.Checkpoint, stored=None, request_id="q1", item=3):
    ours, theirs = socket.socketpair()
    kernel = FakeKernel(theirs)
    memory = {}
    kernel.on("load_checkpoint", checkpoint)
    kernel.on("ready", pb.ReadyResponse())
    kernel.on("mem_put", lambda rid, m: memory.__setitem__(m.key, m.value) or
              pb.MemoryList(entries=[pb.MemoryItem(key=m.key, value=m.value, scope=m.scope)]))
    kernel.on("mem_get", lambda rid, m: pb.MemoryList(entries=[pb.MemoryItem(key=m.key, value=stored)])
              if stored else Err(pb.ERROR_CODE_NOT_FOUND, "none"))
    kernel.on("save_checkpoint", lambda rid, m: pb.Checkpoint(path="duo/writer", saved_at_ns=1, size=len(m.data)))
    kernel.on("send", lambda rid, m: pb.SendResponse(id="r1", to=m.to, depth=1))

    def ack(rid, message):
        receive_id = kernel.wait_request("receive")[0]
        kernel.respond(rid, "ack", pb.AckResponse(removed=len(message.ids)))
        kernel.end(receive_id, "kernel-shutdown")  # the writer then exits
        return None
    kernel.on("ack", ack)

    fd = ours.detach()
    # The writer imports the agentkit these tests use (installed or from the tree).
    env = dict(os.environ, AGENTOS_FD=str(fd), AGENTOS_CHILD_PATH="duo/writer", WRITER_WORK_SECONDS="0",
               PYTHONPATH=os.path.dirname(os.path.dirname(agentkit.__file__)))
    process = subprocess.Popen([sys.executable, str(WRITER)], env=env, pass_fds=[fd], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    os.close(fd)
    receive_id, _ = kernel.wait_request("receive", timeout=20)
    kernel.chunk(receive_id, id=request_id, from_="duo/reviewer", type="request", content_type="application/json",
                 payload=json.dumps({"item": item, "text": "the quick brown fox"}).encode())
    out, err = process.communicate(timeout=20)
    kernel.close()
    assert process.returncode == 0, err
    return kernel, memory, out


def test_writer_works_stores_checkpoints_responds_then_acks():
    # The Swift planner sends the item number as a string.
    kernel, memory, out = _run_writer(pb.Checkpoint(), item="3")
    assert kernel.calls() == ["load_checkpoint", "ready", "receive", "mem_put", "save_checkpoint", "send", "ack"]
    result = {"item": 3, "summary": "THE QUICK BROWN FOX", "words": 4}
    _, put = kernel.wait_request("mem_put")
    assert (put.scope, put.key, json.loads(put.value)) == ("shared/duo", "item-3", result)
    _, saved = kernel.wait_request("save_checkpoint")
    assert json.loads(saved.data) == {"handled": 1, "ids": ["q1"]}
    _, response = kernel.wait_request("send")
    assert (response.to, response.type, response.correlation_id) == ("duo/reviewer", "response", "q1")
    assert json.loads(response.payload) == result
    _, ack = kernel.wait_request("ack")
    assert list(ack.ids) == ["q1"]
    assert "writer: handled item 3 (resumed from checkpoint: 0 done)" in out


def test_writer_answers_a_redelivered_request_from_memory():
    stored = json.dumps({"item": 3, "summary": "STORED", "words": 4})
    checkpoint = pb.Checkpoint(saved_at_ns=5, data=json.dumps({"handled": 2, "ids": ["q0", "q1"]}).encode())
    kernel, memory, out = _run_writer(checkpoint, stored=stored)
    assert kernel.calls() == ["load_checkpoint", "ready", "receive", "mem_get", "send", "ack"]
    _, get = kernel.wait_request("mem_get")
    assert (get.scope, get.key) == ("shared/duo", "item-3")
    _, response = kernel.wait_request("send")
    assert json.loads(response.payload) == json.loads(stored) and response.correlation_id == "q1"
    assert "resumed from checkpoint: 2 done" in out and "answering from memory" in out
    assert memory == {}
