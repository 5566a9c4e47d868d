"""The export stage's refusals: a quantised file that loses too much, or that moves with its batch."""
from __future__ import annotations

from ..errors import KdeployError


class AccuracyGateError(KdeployError):
    pass


class InvarianceGateError(KdeployError):
    pass
