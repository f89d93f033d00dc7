"""Processes the benchmarks start: a stand-in issuer, a gateway factory, and
a small FHIR application with and without ``kaitiaki.protect``.

``python bench/bench_servers.py issuer PORT JWK_FILE`` serves discovery and the
public JWKS of JWK_FILE on loopback. ``gateway_app`` is a uvicorn factory
(``--factory bench_servers:gateway_app``) reading the settings file named by
``KAITIAKI_BENCH_CONFIG``, so uvicorn can run several worker processes.
``patient_app`` serves the Patient document named by ``KAITIAKI_BENCH_PATIENT``
at ``/fhir/Patient/pat-1``; ``protected_app`` is the same behind
``kaitiaki.protect`` with the settings of ``KAITIAKI_BENCH_CONFIG``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import uvicorn
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import kaitiaki
from kaitiaki.gateway.app import Gateway
from kaitiaki.settings import load_settings


def gateway_app() -> Gateway:
    return Gateway(load_settings(os.environ["KAITIAKI_BENCH_CONFIG"]))


def patient_app() -> Starlette:
    document = Path(os.environ["KAITIAKI_BENCH_PATIENT"]).read_bytes()

    async def patient(request: Request) -> Response:
        return Response(document, media_type="application/fhir+json")

    return Starlette(routes=[Route("/fhir/Patient/{id}", patient)])


def protected_app() -> Gateway:
    settings = load_settings(os.environ["KAITIAKI_BENCH_CONFIG"])
    return kaitiaki.protect(patient_app(), settings)


def issuer_app(port: int, key: ECKey) -> Starlette:
    url = f"http://127.0.0.1:{port}"

    async def discovery(request: Request) -> Response:
        return JSONResponse({"issuer": url, "jwks_uri": f"{url}/jwks"})

    async def jwks(request: Request) -> Response:
        return JSONResponse(
            {"keys": [key.as_dict(private=False)]},
            headers={"cache-control": "max-age=3600"},
        )

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
        ]
    )


def main() -> None:
    _, kind, port, key_file = sys.argv
    key = ECKey.import_key(json.loads(Path(key_file).read_text()))
    if kind == "issuer":
        uvicorn.run(
            issuer_app(int(port), key),
            host="127.0.0.1",
            port=int(port),
            log_level="warning",
            access_log=False,
        )


if __name__ == "__main__":
    main()
