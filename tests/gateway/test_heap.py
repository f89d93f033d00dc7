"""`kaitiaki serve` freezes the heap it built at startup and after a reload,
so that full collections skip it; a gateway embedded in another process
never touches that process' collector."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from kaitiaki.cli.serve import gateway_worker
from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import Settings, parse_settings
from tests.gateway.conftest import StandIn, gateway_toml


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _settings(standin: StandIn, tmp_path: Path, extra: str = "") -> Settings:
    toml = gateway_toml(standin.url, standin.url, tmp_path, extra)
    return parse_settings(toml, source="t")


def _started(
    gateway: Gateway, then: Callable[[], Awaitable[None]] | None = None
) -> None:
    async def scenario() -> None:
        await gateway.startup()
        try:
            if then is not None:
                await then()
        finally:
            await gateway.shutdown()

    asyncio.run(scenario())


def test_an_embedded_gateway_leaves_the_collector_alone(
    standin: StandIn, tmp_path: Path
) -> None:
    _started(Gateway(_settings(standin, tmp_path)))
    assert gc.get_freeze_count() == 0


def test_serve_freezes_after_startup_and_a_reload_thaws_what_it_discards(
    standin: StandIn, tmp_path: Path
) -> None:
    gateway = Gateway(_settings(standin, tmp_path), freeze_heap=True)
    seen: dict[str, int | bool] = {}

    async def reload() -> None:
        seen["after_startup"] = gc.get_freeze_count()
        # Garbage in a cycle that a freeze kept: only a thaw lets it go.
        stale = _Cycle()
        gone = weakref.ref(stale)
        gc.freeze()
        del stale
        gc.collect()
        seen["kept_while_frozen"] = gone() is not None
        stricter = _settings(standin, tmp_path, "[waf]\nparanoia_level = 2\n")
        await gateway.apply_settings(stricter)
        seen["collected_on_reload"] = gone() is None
        seen["after_reload"] = gc.get_freeze_count()

    _started(gateway, reload)
    assert seen["after_startup"] > 0
    assert seen["kept_while_frozen"] is True
    assert seen["collected_on_reload"] is True
    assert seen["after_reload"] > 0


def test_serve_workers_freeze_too(
    standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(gateway_toml(standin.url, standin.url, tmp_path))
    path.chmod(0o600)
    monkeypatch.setenv("KAITIAKI_WORKER_CONFIG", str(path))
    assert gateway_worker().freeze_heap is True
