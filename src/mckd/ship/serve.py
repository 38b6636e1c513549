"""`mckd serve DIR`: an exported student behind HTTP (FastAPI on uvicorn).

    GET  /health    {"status": "ok", "model": ..., "task": ..., "runtime": ..., "batches": ...}
    POST /predict   {"inputs": [str, ...]}  ->  {"outputs": [{"output": str, "confidence": float}]}

Concurrent requests are batched: the first request waiting opens a batch, which gathers the
requests that arrive within `max_wait_ms` up to `max_batch` inputs and goes to the model in one
call (in a worker thread, so the server keeps accepting). Bad input is a 4xx with a one-line
`detail`: 400 for a body that is not JSON, 422 for a wrong shape or type or an empty input,
413 for too many or too long inputs.

Needs the `serve` extra: `pip install 'mckd[serve]'`.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' parameter annotations
# (`Request`) at runtime, and they are imported inside build_app, where string annotations
# could not be resolved.
import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mckd.errors import MckdError
from mckd.ship.model import load

log = logging.getLogger(__name__)


@dataclass
class Limits:
    max_batch: int = 64  # inputs per model call (one request may bring more; it goes alone)
    max_wait_ms: float = 5.0  # how long a batch waits for more requests
    max_inputs: int = 256  # inputs per request
    max_chars: int = 2000  # characters per input


@dataclass
class _Pending:
    inputs: list[str]
    future: asyncio.Future


@dataclass
class BatchStats:
    requests: int = 0
    batches: int = 0
    inputs: int = 0
    largest_batch: int = 0
    busy_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "batches": self.batches, "inputs": self.inputs,
                "largest_batch": self.largest_batch, "busy_seconds": round(self.busy_seconds, 3)}


@dataclass
class Batcher:
    """Gathers concurrent requests into model calls (module docstring). `predict` takes a list
    of inputs and returns one JSON-able output per input; it runs in one worker thread."""

    predict: Callable[[list[str]], list[Any]]
    limits: Limits = field(default_factory=Limits)
    stats: BatchStats = field(default_factory=BatchStats)

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mckd-model")

    async def submit(self, inputs: list[str]) -> list[Any]:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(inputs, future))
        return await future

    async def run(self) -> None:
        """Serve batches until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather(loop)
            inputs = [text for p in batch for text in p.inputs]
            started = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(self._pool, self.predict, inputs)
            except Exception as e:  # the model's failure is every waiting request's answer
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(e)
                continue
            self._count(batch, len(inputs), time.perf_counter() - started)
            start = 0
            for p in batch:
                if not p.future.done():  # its client may have gone
                    p.future.set_result(outputs[start : start + len(p.inputs)])
                start += len(p.inputs)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> list[_Pending]:
        """The next request, and those arriving within max_wait_ms, up to max_batch inputs."""
        batch = [await self._queue.get()]
        size = len(batch[0].inputs)
        deadline = loop.time() + self.limits.max_wait_ms / 1000
        while size < self.limits.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            batch.append(nxt)
            size += len(nxt.inputs)
        return batch

    def _count(self, batch: list[_Pending], inputs: int, seconds: float) -> None:
        s = self.stats
        s.requests += len(batch)
        s.batches += 1
        s.inputs += inputs
        s.largest_batch = max(s.largest_batch, inputs)
        s.busy_seconds += seconds

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def input_problem(body: Any, limits: Limits) -> tuple[int, str] | None:
    """(status, one-line message) for a request body that is not `{"inputs": [str, ...]}`
    within the limits; None for a good one."""
    if not isinstance(body, dict) or set(body) != {"inputs"}:
        return 422, 'the body must be a JSON object with one key, "inputs": a list of strings'
    inputs = body["inputs"]
    if not isinstance(inputs, list):
        return 422, f'"inputs" must be a list of strings, not {_json_type(inputs)}'
    if not inputs:
        return 422, '"inputs" is empty: give at least one string'
    if len(inputs) > limits.max_inputs:
        return 413, f'"inputs" has {len(inputs)} items; at most {limits.max_inputs} per request'
    for k, text in enumerate(inputs):
        if not isinstance(text, str):
            return 422, f"inputs[{k}] must be a string, not {_json_type(text)}"
        if not text.split():
            return 422, f"inputs[{k}] is empty: it has no words"
        if len(text) > limits.max_chars:
            return 413, f"inputs[{k}] has {len(text)} characters; at most {limits.max_chars}"
    return None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def build_app(model: Any, limits: Limits | None = None) -> Any:
    """The FastAPI app serving `model` (a ShippedModel, or anything with `predict(list[str])`
    returning objects with `to_json()`, and a `name`, `task.name`, `runtime`)."""
    from fastapi import FastAPI, Request  # the serve extra, checked by `serve`
    from fastapi.responses import JSONResponse

    limits = limits or Limits()
    batcher = Batcher(lambda inputs: [o.to_json() for o in model.predict(inputs)], limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        batcher.close()

    app = FastAPI(title="mckd", lifespan=lifespan)
    app.state.batcher = batcher

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model.name, "task": model.task.name,
                "runtime": model.runtime, **batcher.stats.as_json()}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        # The body is checked here rather than by a pydantic model, so that every problem is
        # one line saying what to send instead.
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return JSONResponse({"detail": f"the body is not JSON ({e})"}, status_code=400)
        problem = input_problem(body, limits)
        if problem is not None:
            return JSONResponse({"detail": problem[1]}, status_code=problem[0])
        try:
            outputs = await batcher.submit(body["inputs"])
        except MckdError as e:
            return JSONResponse({"detail": str(e)}, status_code=422)
        return JSONResponse({"outputs": outputs})

    return app


def serve(path: str, *, host: str = "127.0.0.1", port: int = 8000, runtime: str = "auto",
          threads: int | None = None, limits: Limits | None = None) -> None:
    """Load the exported student at `path` and serve it until interrupted."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise MckdError(f"mckd serve needs the serve extra: pip install 'mckd[serve]' ({e})") from None
    model = load(path, runtime=runtime, threads=threads)
    app = build_app(model, limits)
    log.info("serving %s on http://%s:%d (POST /predict, GET /health)", model.name, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")
