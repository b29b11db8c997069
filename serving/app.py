"""The HTTP surface: Open Inference Protocol V2, plain JSON /predict, /metrics.

Every handler answers either its result or ``{"error": "..."}`` with a 4xx/5xx
status. This is the one place where the server's errors (``errors.py``) become
HTTP status codes (``HTTP_STATUS``); unexpected exceptions are logged with their
trace and answered with a generic 500, never the trace itself.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import metadata
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeldr.serving.engine import FloatArray
from modeldr.serving.errors import (
    InferenceFailed,
    InputTooLarge,
    InvalidInput,
    ModelNotFound,
    NotReady,
    Overloaded,
    ServingError,
    ShuttingDown,
    UnsupportedEncoding,
    limit_hint,
)
from modeldr.serving.protocol import (
    HEADER_LENGTH,
    INPUT_NAME,
    OutputTensor,
    encode_infer_response,
    parse_infer,
    parse_predict,
    require_model,
)
from modeldr.serving.runtime import ModelCard, Runtime

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def _version() -> str:
    try:
        return metadata.version("modeldr")
    except metadata.PackageNotFoundError:
        return "0.0.0"


# Each kind of ServingError and its HTTP status; a subclass inherits its parent's.
HTTP_STATUS: dict[type[ServingError], int] = {
    InvalidInput: 400,
    ModelNotFound: 404,
    InputTooLarge: 413,
    UnsupportedEncoding: 415,
    Overloaded: 429,
    InferenceFailed: 500,
    NotReady: 503,
    ShuttingDown: 503,
}


def http_status(error: BaseException) -> int:
    """The status a ServingError answers with; 500 for anything else."""
    for kind in type(error).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 500


def error_response(error: BaseException) -> JSONResponse:
    """``{"error": message}`` for a ServingError, a generic 500 for anything else."""
    if not isinstance(error, ServingError):
        return JSONResponse({"error": "internal server error"}, status_code=500)
    headers = {} if error.retry_after_s is None else {"Retry-After": str(error.retry_after_s)}
    return JSONResponse({"error": error.message}, status_code=http_status(error), headers=headers)


def guarded(handler: Handler) -> Handler:
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except ServingError as error:
            return error_response(error)
        except Exception as error:
            log.exception("unhandled error in %s %s", request.method, request.url.path)
            return error_response(error)

    wrapper.__name__ = handler.__name__
    return wrapper


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most limit bytes after decompression, else InputTooLarge."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InputTooLarge(
            f"request body is {declared} bytes; the limit is {limit} "
            f"({limit_hint('max_body_bytes')})",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InputTooLarge(
                f"request body exceeds {limit} bytes ({limit_hint('max_body_bytes')})"
            )
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    # tritonclient can compress requests (gzip or zlib "deflate"); bound the inflated size.
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding)
    if wbits is None:
        raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}; use gzip or deflate")
    inflater = zlib.decompressobj(wbits)
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"cannot decompress {encoding} body: {exc}") from None
    if len(inflated) > limit or inflater.unconsumed_tail:
        raise InputTooLarge(
            f"decompressed body exceeds {limit} bytes ({limit_hint('max_body_bytes')})"
        )
    return inflated


def _tensors(runtime: Runtime, texts: list[str], output: FloatArray) -> list[OutputTensor]:
    card = runtime.card
    count = len(texts)
    if card.task == "sequence-classification":
        labels = [card.labels[int(i)] for i in np.argmax(output, axis=1)]
        return [
            OutputTensor("label", "BYTES", [count], labels),
            OutputTensor("probabilities", "FP32", [count, output.shape[1]], output),
        ]
    return [OutputTensor("embedding", "FP32", [count, output.shape[1]], output)]


def _model_outputs(card: ModelCard) -> list[dict[str, Any]]:
    """The V2 metadata's output tensors: what /infer can answer for this model's task."""
    if card.task == "sequence-classification":
        return [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(card.labels)]},
        ]
    return [{"name": "embedding", "datatype": "FP32", "shape": [-1, card.hidden_size]}]


def _predict_result(card: ModelCard, output: FloatArray) -> dict[str, Any]:
    """/predict's plain JSON: one prediction per text for a classifier, else the embeddings."""
    result: dict[str, Any] = {"model": card.name, "version": card.version}
    if card.task == "sequence-classification":
        predictions = []
        for row in output.tolist():
            best = int(np.argmax(row))
            predictions.append(
                {
                    "label": card.labels[best],
                    "score": row[best],
                    "probabilities": dict(zip(card.labels, row, strict=True)),
                }
            )
        result["predictions"] = predictions
    else:
        result["embeddings"] = output.tolist()
    return result


class _Endpoints:
    """The request handlers of one server, all answering for the runtime's one model.

    Methods rather than closures so each handler can be read (and named in a route) on
    its own; the method names are the routes' names, as the closures' names were.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.card = runtime.card
        self.config = runtime.config

    async def server_live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def server_ready(self, request: Request) -> Response:
        reason = self.runtime.health.not_ready_reason()
        if reason is None:
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "reason": reason}, status_code=503)

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(
            {"name": "modeldr-serve", "version": _version(), "extensions": ["binary_tensor_data"]}
        )

    def _check_model(self, request: Request) -> None:
        params = request.path_params
        require_model(params["name"], self.card.name, params.get("version"), self.card.version)

    async def model_metadata(self, request: Request) -> Response:
        self._check_model(request)
        card = self.card
        return JSONResponse(
            {
                "name": card.name,
                "versions": [card.version],
                "platform": "pytorch_safetensors",
                "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
                "outputs": _model_outputs(card),
                # The manifest digest of the files this process verified and loaded: what
                # it serves, asked of the server (the drills' model checks and the operator's
                # evaluation read it here, not from a Deployment's annotation).
                "parameters": {"digest": f"sha256:{card.digest}"},
            }
        )

    async def model_ready(self, request: Request) -> Response:
        self._check_model(request)
        reason = self.runtime.health.not_ready_reason()
        if reason is None:
            return JSONResponse({"name": self.card.name, "ready": True})
        return JSONResponse({"name": self.card.name, "ready": False, "reason": reason}, 503)

    async def infer(self, request: Request) -> Response:
        self._check_model(request)
        card = self.card
        body = await read_body(request, self.config.max_body_bytes)
        parsed = parse_infer(body, request.headers.get(HEADER_LENGTH), card.output_names)
        output = await self.runtime.infer(parsed.texts)
        payload, header_length = encode_infer_response(
            card.name,
            card.version,
            parsed.request_id,
            _tensors(self.runtime, parsed.texts, output),
            parsed,
        )
        if header_length is None:
            return Response(payload, media_type="application/json")
        return Response(
            payload,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(header_length)},
        )

    async def predict(self, request: Request) -> Response:
        body = await read_body(request, self.config.max_body_bytes)
        texts = parse_predict(body)
        output = await self.runtime.infer(texts)
        return JSONResponse(_predict_result(self.card, output))

    async def metrics(self, request: Request) -> Response:
        payload, content_type = self.runtime.metrics.exposition()
        return Response(payload, headers={"Content-Type": content_type})


def _route_table(endpoints: _Endpoints) -> list[tuple[str, Handler, str, str]]:
    """(path, handler, method, route template): the versioned paths share their unversioned
    template, so the request metrics' route label stays one value per endpoint."""
    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    e = endpoints
    return [
        ("/v2", e.server_metadata, "GET", "/v2"),
        ("/v2/health/live", e.server_live, "GET", "/v2/health/live"),
        ("/v2/health/ready", e.server_ready, "GET", "/v2/health/ready"),
        (model, e.model_metadata, "GET", model),
        (versioned, e.model_metadata, "GET", model),
        (f"{model}/ready", e.model_ready, "GET", f"{model}/ready"),
        (f"{versioned}/ready", e.model_ready, "GET", f"{model}/ready"),
        (f"{model}/infer", e.infer, "POST", f"{model}/infer"),
        (f"{versioned}/infer", e.infer, "POST", f"{model}/infer"),
        ("/predict", e.predict, "POST", "/predict"),
        ("/metrics", e.metrics, "GET", "/metrics"),
    ]


def _routes(runtime: Runtime) -> tuple[list[Route], dict[str, str]]:
    """The app's routes, every handler guarded, and each path's route template."""
    routes = []
    templates: dict[str, str] = {}
    for path, handler, method, template in _route_table(_Endpoints(runtime)):
        endpoint = guarded(handler)
        routes.append(Route(path, endpoint, methods=[method]))
        templates[path] = template
    return routes, templates


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404 no route, 405 method) in the same ``{"error"}`` shape."""
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": f"{exc.detail}: {request.method} {request.url.path}"},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error: %r", exc)
    return error_response(exc)


def _lifespan(runtime: Runtime) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Load the model when the server starts, stop the batcher when it shuts down."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    return lifespan


def create_app(runtime: Runtime) -> Starlette:
    routes, templates = _routes(runtime)
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=_lifespan(runtime),
    )
    app.add_middleware(MetricsMiddleware, runtime=runtime, templates=templates)
    return app


class MetricsMiddleware:
    """Count and time every HTTP request by route template (bounded label values)."""

    def __init__(self, app: ASGIApp, runtime: Runtime, templates: dict[str, str]) -> None:
        self.app = app
        self.metrics = runtime.metrics
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        path: str = scope.get("path", "")
        inference = path == "/predict" or path.endswith("/infer")

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        if inference:
            self.metrics.inflight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if inference:
                self.metrics.inflight.dec()
            route = scope.get("route")
            template = self.templates.get(getattr(route, "path", ""), "unmatched")
            self.metrics.requests.labels(template, scope.get("method", ""), str(status)).inc()
            self.metrics.request_duration.labels(template).observe(time.perf_counter() - started)
