"""Devices: symgraph runs on the CPU. ``sg.cpu()`` exists so MXNet scripts run unchanged."""

from __future__ import annotations


class Context:
    """A device (MXNet's ``mx.Context``); only ``cpu`` is available."""

    def __init__(self, device_type="cpu", device_id=0):
        if isinstance(device_type, Context):
            device_type, device_id = device_type.device_type, device_type.device_id
        if device_type not in ("cpu", "cpu_pinned", "cpu_shared"):
            raise ValueError(f"symgraph runs on the CPU only; '{device_type}' is not available")
        self.device_type = device_type
        self.device_id = device_id

    def __repr__(self):
        return f"{self.device_type}({self.device_id})"

    def __eq__(self, other):
        return isinstance(other, Context) and (self.device_type, self.device_id) == (
            other.device_type, other.device_id)

    def __hash__(self):
        return hash((self.device_type, self.device_id))


_CPUS: dict = {}


def cpu(device_id=0) -> Context:
    """One Context object per device id, so device checks on the hot path are identity."""
    ctx = _CPUS.get(device_id)
    if ctx is None:
        ctx = _CPUS[device_id] = Context("cpu", device_id)
    return ctx


def gpu(device_id=0):
    raise ValueError("symgraph runs on the CPU only: use sg.cpu()")


def current_context() -> Context:
    return cpu()
