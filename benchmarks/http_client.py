"""HTTP clients against the loopback OpenAI-compatible server: requests/s and client CPU per
request, with the server's ceiling (concurrency / latency) as the bound.

The server (tests/fault_server.py, no faults) runs in this process; each client runs in a
child process of its own, one after another, so that the clients never share the cores with
each other. Every client keeps `--concurrency` requests in flight, sends the same completion
request bodies and reads each answer's JSON:

- httpx-1: one httpx.AsyncClient holding every connection;
- httpx-8: httpx clients of at most 8 connections each, the requests spread over them;
- aiohttp: one aiohttp.ClientSession (what the OpenAI backend uses);
- streams: HTTP/1.1 written by hand on asyncio streams, one connection per worker: no client
  library at all, the floor for a Python client on this event loop.

    python benchmarks/http_client.py --requests 10000 --rounds 2

The httpx rows need httpx (`pip install httpx`); mckd itself does not depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

CLIENTS = ("httpx-1", "httpx-8", "aiohttp", "streams")


def body(i: int) -> dict[str, object]:
    return {"model": "sim", "prompt": f"Input: item {i} of the run\nOutput:", "max_tokens": 32}


async def with_httpx(url: str, n: int, conc: int, per_client: int) -> int:
    import httpx

    shards = -(-conc // per_client)
    per = -(-conc // shards)
    limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
    clients = [httpx.AsyncClient(base_url=url + "/", limits=limits, timeout=30)
               for _ in range(shards)]
    todo, ok = list(range(n)), 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal ok
        while todo:
            resp = await client.post("completions", json=body(todo.pop()))
            resp.json()
            ok += resp.status_code == 200

    await asyncio.gather(*(worker(clients[j % shards]) for j in range(conc)))
    for c in clients:
        await c.aclose()
    return ok


async def with_aiohttp(url: str, n: int, conc: int) -> int:
    import aiohttp

    todo, ok = list(range(n)), 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as session:

        async def worker() -> None:
            nonlocal ok
            while todo:
                data = json.dumps(body(todo.pop())).encode()
                async with session.post(url + "/completions", data=data,
                                        headers={"Content-Type": "application/json"}) as resp:
                    json.loads(await resp.read())
                    ok += resp.status == 200

        await asyncio.gather(*(worker() for _ in range(conc)))
    return ok


async def with_streams(url: str, n: int, conc: int) -> int:
    hostport = url.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    path = "/" + url.split("//", 1)[1].split("/", 1)[1] + "/completions"
    todo, ok = list(range(n)), 0

    async def worker() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection(host, int(port))
        while todo:
            data = json.dumps(body(todo.pop())).encode()
            head = (f"POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json"
                    f"\r\nContent-Length: {len(data)}\r\n\r\n").encode()
            writer.write(head + data)
            lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
            length = next(int(x.split(b":")[1]) for x in lines
                          if x.lower().startswith(b"content-length:"))
            json.loads(await reader.readexactly(length))
            ok += lines[0].split()[1] == b"200"
        writer.close()

    await asyncio.gather(*(worker() for _ in range(conc)))
    return ok


def child(kind: str, url: str, n: int, conc: int) -> None:
    runs = {
        "httpx-1": lambda: with_httpx(url, n, conc, per_client=conc),
        "httpx-8": lambda: with_httpx(url, n, conc, per_client=8),
        "aiohttp": lambda: with_aiohttp(url, n, conc),
        "streams": lambda: with_streams(url, n, conc),
    }
    start = time.perf_counter()
    ok = asyncio.run(runs[kind]())
    wall = time.perf_counter() - start
    use = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"client": kind, "ok": ok, "wall": wall,
                      "cpu_s": use.ru_utime + use.ru_stime}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    ap.add_argument("--json", type=Path, help="write the raw results here")
    ap.add_argument("--child", nargs=2, metavar=("CLIENT", "URL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], args.requests, args.concurrency)

    from fault_server import FaultServer

    ceiling = args.concurrency / args.latency
    rows = []
    with FaultServer(latency_s=args.latency) as srv:
        for rnd in range(args.rounds):
            for kind in args.clients:
                out = subprocess.run(
                    [sys.executable, __file__, "--requests", str(args.requests),
                     "--concurrency", str(args.concurrency), "--child", kind, srv.url],
                    check=True, capture_output=True, text=True, env={**os.environ},
                ).stdout
                r = json.loads(out.strip().splitlines()[-1])
                if r["ok"] != args.requests:
                    raise SystemExit(f"{kind}: {r['ok']} of {args.requests} requests answered")
                r.update(round=rnd + 1, req_s=args.requests / r["wall"],
                         of_ceiling=args.requests / r["wall"] / ceiling,
                         cpu_ms_per_request=1000 * r["cpu_s"] / args.requests)
                rows.append(r)
                print(f"round {rnd + 1} {kind:8s} {r['req_s']:6.1f} req/s "
                      f"({100 * r['of_ceiling']:.1f}% of {ceiling:.1f}), "
                      f"{r['cpu_ms_per_request']:.2f} ms CPU/request", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()
                                                  if k not in ("json", "child")},
                                         "ceiling": ceiling, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
