"""`slimkit serve`: the trained pipeline behind an HTTP service (FastAPI + uvicorn).

:class:`RecommendationService` (service.py) loads a spec's trained pipeline once and
answers for known users and for new histories; it imports no web framework, so a library
user can call it directly. app.py puts it behind FastAPI (pydantic schemas in
schemas.py), server.py runs that app with uvicorn. fastapi and uvicorn are imported only
by app.py and server.py (the ``serve`` extra), never by ``import slimkit.serve``.
"""

from slimkit.serve.service import (
    RecommendationService,
    UnknownItemsError,
    UnknownUserError,
    named_item_ids,
)

__all__ = ["RecommendationService", "UnknownItemsError", "UnknownUserError", "named_item_ids"]
