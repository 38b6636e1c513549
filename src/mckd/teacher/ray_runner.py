"""The teacher's calls on a Ray cluster (`teacher.runner: ray`): Ray Data `map_batches` over a
pool of `teacher.workers` actors, each holding one backend built from the same config (an HTTP
client, an in-process GGUF model, a transformers model).

The driver keeps what makes a labelling run safe: it sends only requests that the cache does not
hold (each distinct one once), stores every answer in the cache the moment it comes back, so a
driver killed with -9 resumes without asking again for anything it stored (only the batches in
flight at the kill are paid twice), and never caches a failure. A killed actor is restarted by
Ray and its batch retried.
The labelling run (engine.py) then post-processes and writes the ledger exactly as with the
local runner. Retries happen inside each actor's backend, as they would locally.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from mckd.errors import ConfigError
from mckd.teacher import backends
from mckd.teacher.backends.base import BackendError, Completion, TeacherRequest
from mckd.teacher.cache import TeacherCache
from mckd.teacher.config import TeacherConfig

log = logging.getLogger(__name__)


def request_from(payload: dict[str, Any]) -> TeacherRequest:
    """The inverse of `TeacherRequest.payload`."""
    messages = payload.get("messages")
    return TeacherRequest(**{
        **payload,
        "stop": tuple(payload.get("stop") or ()),
        "messages": tuple((r, c) for r, c in messages) if messages is not None else None,
    })


class _Caller:
    """One Ray Data actor: builds its backend once, answers each batch of requests
    concurrently (up to the config's concurrency) on one event loop."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.backend = backends.build_backend(TeacherConfig(**cfg))

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        requests = [request_from(json.loads(r)) for r in batch["request"]]
        results = asyncio.run(self._complete(requests))
        out: dict[str, list[Any]] = {"key": list(batch["key"]), "result": []}
        for res in results:
            if isinstance(res, BackendError):
                out["result"].append(json.dumps({"error": res.reason, "message": str(res),
                                                 "retryable": res.retryable,
                                                 "attempts": res.attempts}))
            else:
                out["result"].append(json.dumps(res.__dict__))
        return out

    async def _complete(self, requests: list[TeacherRequest]) -> list[Completion | BackendError]:
        async def one(req: TeacherRequest) -> Completion | BackendError:
            try:
                return await self.backend.acomplete(req)
            except BackendError as e:
                return e

        try:
            return list(await asyncio.gather(*(one(r) for r in requests)))
        finally:
            await self.backend.aclose()


def _result(text: str) -> Completion | BackendError:
    data = json.loads(text)
    if "error" in data:
        prefix = f"{data['error']}: "
        message = data["message"][len(prefix):] if data["message"].startswith(prefix) else data["message"]
        return BackendError(data["error"], message, retryable=data["retryable"],
                            attempts=data["attempts"])
    return Completion(**data)


def complete_on_ray(
    needed: list[tuple[str, TeacherRequest]],
    cfg: TeacherConfig,
    model: str,
    cache: TeacherCache | None,
) -> dict[str, Completion | BackendError]:
    """Answer the (key, request) pairs the cache does not hold on Ray actors; cache each answer
    as it arrives. Returns every answer or failure by key."""
    try:  # Ray is optional (mckd[ray]) and heavy: imported only for this runner
        import ray
        import ray.data
    except ImportError:
        raise ConfigError("teacher.runner ray needs Ray: pip install 'mckd[ray]'") from None
    todo: dict[str, TeacherRequest] = {}
    for key, req in needed:
        if key not in todo and (cache is None or not cache.contains(key)):
            todo[key] = req
    if not todo:
        return {}
    if not ray.is_initialized():
        ray.init(address=cfg.ray_address, include_dashboard=False, log_to_driver=False)
    rows = [{"key": k, "request": json.dumps(r.payload())} for k, r in todo.items()]
    in_process = cfg.backend in ("llamacpp", "transformers")
    ds = ray.data.from_items(rows).map_batches(
        _Caller,
        fn_constructor_kwargs={"cfg": cfg.model_dump(mode="json")},
        # One batch per actor at a time: with a second one queued, an actor sends it while the
        # answers of the first are still on their way to the driver, doubling what a killed
        # driver loses (answered, never cached, paid for again on resume).
        compute=ray.data.ActorPoolStrategy(size=cfg.workers, max_tasks_in_flight_per_actor=1),
        batch_size=max(1, cfg.concurrency),
        # an HTTP client needs little CPU; an in-process model needs its threads
        num_cpus=float(cfg.n_threads) if in_process else 0.25,
        # A killed actor is restarted and its batches retried: Ray Data's actor pool defaults
        # (max_restarts=-1, max_task_retries=-1; tests/test_ray_faults.py kills one). Passing
        # them here would go through **ray_remote_args, deprecated in Ray 2.60.
    )
    log.info("labelling: %d requests on %d Ray workers", len(rows), cfg.workers)
    out: dict[str, Completion | BackendError] = {}
    for row in ds.iter_rows():
        result = _result(row["result"])
        if isinstance(result, Completion) and cache is not None:
            cache.put(row["key"], model, todo[row["key"]], result)  # durable before anything else
        out[row["key"]] = result
    return out
