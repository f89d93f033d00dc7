"""The gateway fixtures of tests/gateway, for the traffic-filter tests."""

from tests.gateway.conftest import gateway, recorder, standin

__all__ = ["gateway", "recorder", "standin"]
