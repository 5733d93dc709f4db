"""Pure ASGI middleware, one concern each, outermost first:

    RequestLogMiddleware (request id, access log, request metrics by matched route)
    -> ApiKeyMiddleware (only when keys are configured) -> BodyLimitMiddleware -> routes

Pure ASGI (not Starlette's BaseHTTPMiddleware) on purpose: it leaves ``receive`` alone, so a scoring
route can still hear the client disconnect and abort its engine work. Checks that belong to one route
(a JSON body) are route dependencies, not middleware (``service/api/dependencies.py``).
"""

from service.api.middleware.auth import ApiKeyMiddleware
from service.api.middleware.body_limit import BodyLimitMiddleware
from service.api.middleware.request_log import RequestLogMiddleware

__all__ = ["ApiKeyMiddleware", "BodyLimitMiddleware", "RequestLogMiddleware"]
