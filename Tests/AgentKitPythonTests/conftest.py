"""Fixtures of the agentkit tests. agentkit is used as installed (pip install
Sources/AgentKitPython), else from the source tree."""
from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

try:
    import agentkit  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Sources" / "AgentKitPython" / "src"))
    import agentkit  # noqa: F401

from fake_kernel import FakeKernel  # noqa: E402


@pytest.fixture
def socketpair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    for s in (ours, theirs):
        try:
            s.close()
        except OSError:
            pass


@pytest.fixture
def kernel(socketpair, monkeypatch):
    monkeypatch.delenv("AGENTOS_CHILD_PATH", raising=False)
    fake = FakeKernel(socketpair[1])
    yield fake
    fake.close()


@pytest.fixture
def agent_fd(socketpair):
    """The agent's end as a bare fd (as agentd hands it over)."""
    return socketpair[0].detach()


@pytest.fixture
def agent(kernel, agent_fd):
    a = agentkit.connect(fd=agent_fd)
    yield a
    a.close()
