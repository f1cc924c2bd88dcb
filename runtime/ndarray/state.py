"""Per-thread autograd state: whether ops are recorded, and in which mode.

Kept apart from the tracer so Blocks, losses and the autograd API read one source. Each
thread has its own flags, as in MXNet, so two threads training at once do not see each
other's ``record()`` scopes.
"""

from __future__ import annotations

import threading


class _State(threading.local):
    def __init__(self):
        self.recording = False
        self.training = False
        self.block_depth = 0  # > 0 while a Block call is running: its ops are traced
        self.blocks = []  # names of the Blocks being called, outermost first
        self.trace = None  # the pending Trace ops are appended to
        self.symbolic = 0  # > 0 while a hybridized block's forward runs: values are unknown
        self.reads = 0  # values read so far (a call that read one cannot be replayed)


STATE = _State()
EPOCH = [0]  # bumped whenever a Parameter's arrays or buffers, or a Block's structure, change


def bump_epoch() -> None:
    """Recorded block calls (runtime/gluon/hybrid.py) hold parameter arrays and a fixed
    structure, and the Trainer's update is compiled over the parameters' buffers: any
    change of either makes them stale."""
    EPOCH[0] += 1


def is_recording() -> bool:
    return STATE.recording


def is_training() -> bool:
    return STATE.training


def set_recording(flag: bool) -> bool:
    previous, STATE.recording = STATE.recording, bool(flag)
    return previous


def set_training(flag: bool) -> bool:
    previous, STATE.training = STATE.training, bool(flag)
    return previous


def tracing() -> bool:
    """Ops build graph nodes (instead of running numpy) inside record() and Block calls."""
    return STATE.recording or STATE.block_depth > 0


def current_block_name() -> str:
    return STATE.blocks[-1] if STATE.blocks else ""


def current_block_prefix() -> str:
    return f"{STATE.blocks[-1]}_" if STATE.blocks else ""


def symbolic() -> bool:
    """Inside a hybridized block's forward: arrays stand for graph values (MXNet's symbols),
    so reading one is refused (a value-dependent branch would be frozen by the replay)."""
    return STATE.symbolic > 0
