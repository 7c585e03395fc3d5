"""Rendering a page: every template sees who is signed in and their CSRF token."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from service.web.security import current_principal


def page(request: Request, name: str, context: dict[str, Any], *,
         status_code: int = 200) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    who = current_principal(request)
    return templates.TemplateResponse(request, name, {
        **context, "who": who, "csrf_token": who.csrf if who else None},
        status_code=status_code)
