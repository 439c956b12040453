"""The FastAPI app over a :class:`~slimkit.serve.service.RecommendationService`.

Endpoints (OpenAPI at /docs and /openapi.json):

* ``GET /health``: liveness;
* ``GET /model``: what is served (spec, backbone + fusion, dataset sizes, metrics);
* ``GET /users/{user_id}/recommendations?k=10&include_history=false``: a known user;
* ``POST /recommendations`` with ``{"items": [...], "k": 10}``: a new history.

Errors: unknown user 404 (close ids in ``suggestions``), unknown history items 422 (close
matches in ``unknown_items``), a malformed body or query 422 (FastAPI's validation list).
Handlers are plain ``def``: FastAPI runs them in its thread pool, so a long student
generation never blocks other requests.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse

from slimkit._version import __version__
from slimkit.errors import SlimkitError
from slimkit.serve.schemas import ErrorBody, Health, HistoryRequest, Recommendations
from slimkit.serve.service import MAX_K, RecommendationService, UnknownItemsError, UnknownUserError

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown user (close ids in `suggestions`)."},
    422: {"model": ErrorBody, "description": "Unknown items (close matches in `unknown_items`) "
          "or an invalid body."},
}


def _error(status: int, exc: SlimkitError, **extra: Any) -> JSONResponse:
    body = ErrorBody(detail=exc.message, problems=exc.problems, hint=exc.hint, **extra)
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"))


def create_app(service: RecommendationService) -> FastAPI:
    """The HTTP app answering from ``service`` (loaded already)."""
    meta = service.metadata()
    app = FastAPI(
        title="slimkit recommendations",
        version=__version__,
        description=(f"Top-K items with the student's rationale, from the trained "
                     f"{meta['model']['backbone']} + {meta['model']['fusion']} model of "
                     f"{meta['spec'] or 'the default spec'} ({meta['dataset']['name']})."),
    )
    app.state.service = service

    @app.exception_handler(UnknownUserError)
    def unknown_user(request: Request, exc: UnknownUserError) -> JSONResponse:
        return _error(404, exc, suggestions=exc.suggestions)

    @app.exception_handler(UnknownItemsError)
    def unknown_items(request: Request, exc: UnknownItemsError) -> JSONResponse:
        return _error(422, exc, unknown_items=exc.unknown)

    @app.exception_handler(SlimkitError)
    def user_error(request: Request, exc: SlimkitError) -> JSONResponse:
        return _error(422, exc)

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Liveness: the model is loaded and answering."""
        return Health(status="ok", model_loaded=True)

    @app.get("/model", tags=["service"])
    def model() -> dict[str, Any]:
        """What is served: spec, backbone + fusion, dataset sizes, metrics, request counts."""
        return service.metadata()

    @app.get("/users/{user_id}/recommendations", response_model=Recommendations,
             responses=_ERRORS, tags=["recommendations"])
    def for_user(
        user_id: str = Path(description="Raw user id as in the dataset's files."),
        k: int = Query(10, ge=1, le=MAX_K, description="How many items."),
        include_history: bool = Query(False, description="Allow items the user already has."),
    ) -> dict[str, Any]:
        """Top-K for a known user, with their rationale and which items it names."""
        return service.for_user(user_id, k=k, include_history=include_history)

    @app.post("/recommendations", response_model=Recommendations, responses=_ERRORS,
              tags=["recommendations"])
    def for_history(body: HistoryRequest) -> dict[str, Any]:
        """Top-K for a new user given by a history; the student writes their rationale
        (cached by history: a repeated history costs one forward pass)."""
        return service.for_history(body.items, k=body.k, include_history=body.include_history)

    return app
