"""``GET /metrics``: the Prometheus exposition of this process, for the scraper only."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Services
from api.errors import ApiError, unauthorized

router = APIRouter(tags=["operations"])


def _loopback_and_direct(request: Request) -> bool:
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False  # relayed by a proxy: the real client may be anyone
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def authorize_scrape(request: Request, token: str | None) -> None:
    """With a metrics token: the request's Bearer token must be it (401 otherwise). Without:
    only a loopback client that no proxy relayed may scrape (403 otherwise)."""
    if token is None:
        if not _loopback_and_direct(request):
            raise ApiError(
                403,
                "forbidden",
                "metrics are served to loopback clients only; set METRICS_TOKEN to scrape "
                "from elsewhere",
            )
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise unauthorized("metrics_token_invalid", "GET /metrics needs the metrics Bearer token")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        401: {"description": "wrong or missing metrics token"},
        403: {"description": "not a loopback client (no METRICS_TOKEN set)"},
    },
)
async def metrics(request: Request, services: Services) -> Response:
    """Prometheus text format; scrape every instance with ``METRICS_TOKEN`` as Bearer token."""
    authorize_scrape(request, services.settings.metrics_token)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
