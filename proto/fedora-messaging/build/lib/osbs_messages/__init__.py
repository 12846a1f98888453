"""fedora-messaging schemas of the events OSBS publishes (state changes, build requests)."""

from .request import BuildRequestV1
from .state import BuildStateChangeV1

__all__ = ["BuildRequestV1", "BuildStateChangeV1"]
