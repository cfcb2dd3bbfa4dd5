"""The devices each session channel is used on, with cumulative weights (for :func:`~.model.pick`).

Click events carry the session's ``device`` (free text in the contract, not a metric label);
scenario incidents can target one device of a step (``device: ios``).
"""

from __future__ import annotations

from typing import Final

DEVICES: Final[dict[str, tuple[tuple[str, ...], tuple[float, ...]]]] = {
    "web": (("desktop", "mobile", "tablet"), (0.48, 0.92, 1.0)),
    "app": (("ios", "android"), (0.52, 1.0)),
    "kiosk": (("kiosk",), (1.0,)),
    "store": (("store_tablet",), (1.0,)),
}


def channel_of(device: str) -> str | None:
    """The session channel ``device`` belongs to (None for an unknown device)."""
    return next((channel for channel, (devices, _) in DEVICES.items() if device in devices), None)
