"""Front-end capacity: what the HTTP layer, validation, prompt rendering, the scorer and serialisation
cost per item, with an engine that answers instantly (so only the front end is measured).

    python loadtest/frontend.py                 # items/s on one core at 4 KB and 32 KB, 1,000-item timings
    python loadtest/frontend.py --qwen          # the same with Qwen's real vocabulary and the libra profile
    python loadtest/frontend.py --profile       # cProfile of the request path (in process), top functions

- Throughput: ``libra-serve``'s app under uvicorn in a child process pinned to one core; a client in
  another process pinned to the other core sends batches of 256 unique items (cache off) from 4
  connections for ``--seconds``. Reports items/s of that one core.
- The floor: the bare tokenizer encoding the same rendered prompts on one core (batches of 256, as the
  service gets them), which any judge service pays; the service's rate is reported as a share of it.
- A 1,000-item request: time to parse and validate its JSON, to render and score it (instant engine),
  and to serialise the response; and the end-to-end time over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import sys
import time
from contextlib import asynccontextmanager
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPLY = "<think>\n347+58=405\n1: 7+8+0=15 5=5 ok\n</think>\n\n\\boxed{correct}"


def make_app(model: str, judge: str):
    from transformers import AutoTokenizer

    from service.app import build_app
    from service.config import Settings
    from service.engine.fake import FakeEngine

    tokenizer = AutoTokenizer.from_pretrained(model)

    @asynccontextmanager
    async def open_engine():
        yield FakeEngine.instant(tokenizer, REPLY)

    settings = Settings(admission_budget=1 << 20, max_body_bytes=1 << 30, max_items_per_request=4096,
                        verify_workers=0, log_level="warning", cache_entries=0)
    return build_app(settings, open_engine, judge)


def items(n: int, size: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    words = ["carry", "digit", "column", "check", "sum", "the", "next", "value", "so", "we", "get", "and"]
    out = []
    for _ in range(n):
        a, b = rng.randrange(100, 1000), rng.randrange(100, 1000)
        body, length = [], 0
        while length < size - 40:
            body.append(rng.choice(words))
            length += len(body[-1]) + 1
        out.append({"question": f"What is {a} + {b}?", "response": " ".join(body) + f" So {a} + {b} = {a + b}."})
    return out


def serve(port: int, core: int | None, model: str, judge: str) -> None:
    import uvicorn

    if core is not None:
        os.sched_setaffinity(0, {core})
    uvicorn.run(make_app(model, judge), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def rendered_prompts(tokenizer, renderer, size: int, n: int, seed: int) -> list[str]:
    """The prompts the judge sees for ``items(n, size, seed)``, as text, rendered by the model's own template."""
    return [tokenizer.apply_chat_template(renderer.fill(i["question"], i["response"]), tokenize=False,
                                          add_generation_prompt=True) for i in items(n, size, seed)]


def bare_tokenizer(model: str, judge: str, size: int, seconds: float, core: int | None, queue) -> None:
    """Items/s of the model's tokenizer alone, encoding the rendered prompts on one core."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    from transformers import AutoTokenizer

    from service.judge.profiles import load_profile
    from service.judge.prompts import PromptRenderer

    tokenizer = AutoTokenizer.from_pretrained(model)
    renderer = PromptRenderer(tokenizer, load_profile(judge).messages_for(False))  # one plain encoder, not eight
    backend = tokenizer.backend_tokenizer
    batches = [rendered_prompts(tokenizer, renderer, size, 256, seed) for seed in range(8)]
    backend.encode_batch(batches[0])  # warm-up
    done, i, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        backend.encode_batch(batches[i % len(batches)], add_special_tokens=False)
        done, i = done + 256, i + 1
    queue.put(done / (time.perf_counter() - t0))


def floor_rate(model: str, judge: str, size: int, seconds: float) -> float:
    ctx = get_context("spawn")
    cores = sorted(os.sched_getaffinity(0))
    queue = ctx.Queue()
    proc = ctx.Process(target=bare_tokenizer, args=(model, judge, size, seconds, cores[0], queue))
    proc.start()
    rate = queue.get(timeout=seconds + 600)
    proc.join()
    return rate


async def load(url: str, bodies: list[bytes], per_body: int, seconds: float, connections: int) -> tuple[int, float]:
    import httpx

    done = 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=300, headers={"content-type": "application/json"}) as client:

        async def worker(k: int) -> None:
            nonlocal done
            i = k
            while time.perf_counter() < stop:
                resp = await client.post("/score", content=bodies[i % len(bodies)])
                assert resp.status_code == 200, resp.text[:300]
                done += per_body
                i += connections

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(connections)))
        return done, time.perf_counter() - t0


def client(url: str, size: int, seconds: float, core: int | None, queue) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})
    bodies = [json.dumps({"items": items(256, size, seed), "cache": False}).encode() for seed in range(24)]
    asyncio.run(load(url, bodies[:2], 256, 2.0, 4))  # warm-up
    done, wall = asyncio.run(load(url, bodies, 256, seconds, 4))
    queue.put((done, wall))


def wait_healthy(url: str) -> None:
    import httpx

    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server did not start")


def throughput(size: int, seconds: float, model: str, judge: str) -> float:
    from libra_eval.server_process import free_port

    ctx = get_context("spawn")
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = (cores[0], cores[1]) if len(cores) > 1 else (None, None)
    port = free_port()
    server = ctx.Process(target=serve, args=(port, server_core, model, judge), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        queue = ctx.Queue()
        proc = ctx.Process(target=client, args=(url, size, seconds, client_core, queue))
        proc.start()
        done, wall = queue.get(timeout=seconds + 300)
        proc.join()
        return done / wall
    finally:
        server.terminate()
        server.join()


def thousand_item_timings(size: int, model: str, judge: str) -> dict:
    """Parse+validate, score (instant engine) and serialise one 1,000-item request, in process."""
    from service.api.protocol import ScoreRequest
    from service.api.results import ScoreResponse, ScoreResult
    from service.judge.types import ScoreItem

    app = make_app(model, judge)
    body = json.dumps({"items": items(1000, size, 99), "cache": False}).encode()

    async def run() -> dict:
        async with app.router.lifespan_context(app):
            serving = app.state.serving
            t0 = time.perf_counter()
            req = ScoreRequest.model_validate_json(body)
            t1 = time.perf_counter()
            opts = req.to_options(serving.profiles[judge])
            results = await serving.scorer.score([ScoreItem(i.question, i.response, i.reference, i.id)
                                                  for i in req.items], opts)
            t2 = time.perf_counter()
            out = ScoreResponse(results=[ScoreResult.from_result(r) for r in results], model="instant",
                                judge=judge).model_dump_json()
            t3 = time.perf_counter()
            return {"body_bytes": len(body), "parse_validate_s": round(t1 - t0, 4), "render_score_s": round(t2 - t1, 4),
                    "serialise_s": round(t3 - t2, 4), "response_bytes": len(out)}

    return asyncio.run(run())


def profile(size: int, requests: int, model: str, judge: str) -> str:
    import httpx

    app = make_app(model, judge)
    bodies = [json.dumps({"items": items(256, size, s), "cache": False}).encode() for s in range(requests)]

    async def run() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
                for b in bodies:
                    r = await c.post("/score", content=b, headers={"content-type": "application/json"})
                    assert r.status_code == 200

    prof = cProfile.Profile()
    prof.enable()
    asyncio.run(run())
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--sizes", default="4096,32768", help="response sizes in bytes")
    ap.add_argument("--qwen", action="store_true", help="Qwen's real vocabulary (nano/qwen.py) and the libra "
                    "profile instead of the nano judge's byte tokenizer")
    ap.add_argument("--model", help="a tokenizer directory (default: the nano judge's, or Qwen's with --qwen)")
    ap.add_argument("--judge", help="judge profile (default: nano, or libra with --qwen)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the request path and exit")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from service.config import NANO_JUDGE_PATH

    model, judge = args.model, args.judge or ("libra" if args.qwen else "nano")
    if model is None and args.qwen:
        import tempfile

        from nano.qwen import build_tokenizer

        model = tempfile.mkdtemp(prefix="qwen-tokenizer-")
        build_tokenizer().save_pretrained(model)
    model = model or str(NANO_JUDGE_PATH)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.profile:
        print(profile(sizes[0], 8, model, judge))
        return 0
    result = {"cores": len(os.sched_getaffinity(0)), "tokenizer": "qwen" if args.qwen else model, "judge": judge,
              "throughput": {}, "thousand_items": {}}
    for size in sizes:
        rate = throughput(size, args.seconds, model, judge)
        floor = floor_rate(model, judge, size, args.seconds)
        key = f"{size // 1024}KB"
        result["throughput"][key] = {"items_per_s_one_core": round(rate, 1),
                                     "bare_tokenizer_items_per_s_one_core": round(floor, 1),
                                     "share_of_bare_tokenizer": round(rate / floor, 3)}
        result["thousand_items"][key] = thousand_item_timings(size, model, judge)
        print(f"{size // 1024} KB responses: {rate:.0f} items/s on one core; the bare tokenizer {floor:.0f} "
              f"items/s ({rate / floor:.2f}x); 1,000-item request: {result['thousand_items'][key]}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
