"""Serving the built frontend (``frontend/dist``) at ``/``, with the single-page-app fallback."""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


class SinglePageApp(StaticFiles):
    """Static files; an unknown path outside ``/api`` gets ``index.html``, so the browser's
    router can show ``/novels/42`` after a reload."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or path.startswith("api/"):
                raise
            return await super().get_response("index.html", scope)


def frontend_app(directory: Path) -> SinglePageApp | None:
    """The app serving ``directory``, or None when the frontend was not built."""
    if not (directory / "index.html").is_file():
        return None
    return SinglePageApp(directory=directory, html=True)
