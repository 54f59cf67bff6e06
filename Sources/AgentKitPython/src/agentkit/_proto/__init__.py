"""The generated protobuf classes of the wire contract (agentos.proto).

`agentos_pb2.py` is made by ../../../generate.sh; do not edit it by hand.
"""
from . import agentos_pb2 as pb

__all__ = ["pb"]
