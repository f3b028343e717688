"""Load for bench/lane-isolation.sh: closed-loop batch clients plus realtime requests at a fixed
rate against one OpenAI-compatible URL. Realtime TTFT is the time to the first content chunk of
a streamed answer; batch throughput counts requests (and completion tokens) finished in the
window. Prints one JSON object."""
import argparse
import asyncio
import json
import random
import time

try:
    import httpx2 as httpx  # what the pinned openai client brings
except ImportError:
    import httpx

TOPICS = ["bridges", "rivers", "robots", "castles", "comets", "forests", "harbors", "lighthouses", "trains", "volcanoes"]


def percentile(values, q):
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


async def batch_client(client, args, i, stop_at, out):
    rng = random.Random(args.seed * 1000 + i)
    n = 0
    while time.monotonic() < stop_at:
        body = {"model": args.model, "max_tokens": args.batch_max_tokens,
                "messages": [{"role": "user", "content": f"Write a long essay about {rng.choice(TOPICS)} number {i}-{n}."}]}
        n += 1
        t0 = time.monotonic()
        try:
            r = await client.post("/chat/completions", json=body, headers={"x-switchyard-lane": "batch"})
            ok = r.status_code == 200
            tokens = r.json().get("usage", {}).get("completion_tokens", 0) if ok else 0
        except httpx.HTTPError:
            ok, tokens = False, 0
        t1 = time.monotonic()
        out.append({"start": t0, "end": t1, "ok": ok, "tokens": tokens})


async def realtime_request(client, args, k, out):
    body = {"model": args.model, "max_tokens": args.rt_max_tokens, "stream": True,
            "messages": [{"role": "user", "content": f"Say hello to visitor {k}."}]}
    t0 = time.monotonic()
    first = None
    ok = False
    try:
        async with client.stream("POST", "/chat/completions", json=body, headers={"x-switchyard-lane": "realtime"}) as r:
            ok = r.status_code == 200
            async for line in r.aiter_lines():
                if first is None and line.startswith("data: ") and '"content"' in line:
                    first = time.monotonic()
    except httpx.HTTPError:
        ok = False
    out.append({"sent": t0, "ttft": (first - t0) if (ok and first) else None, "ok": ok and first is not None})


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--batch-clients", type=int, default=16)
    ap.add_argument("--batch-max-tokens", type=int, default=64)
    ap.add_argument("--rt-rate", type=float, default=0.5)
    ap.add_argument("--rt-max-tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=args.url, timeout=httpx.Timeout(600), limits=limits) as client:
        start = time.monotonic()
        window_start = start + args.warmup
        stop_at = window_start + args.duration
        batch, realtime = [], []
        batch_tasks = [asyncio.create_task(batch_client(client, args, i, stop_at, batch)) for i in range(args.batch_clients)]
        rt_tasks = []
        k = 0
        # Fixed-rate schedule, computed up front; bounded by the window.
        while True:
            due = window_start + k / args.rt_rate
            if due >= stop_at:
                break
            await asyncio.sleep(max(0, due - time.monotonic()))
            rt_tasks.append(asyncio.create_task(realtime_request(client, args, k, realtime)))
            k += 1
        await asyncio.gather(*rt_tasks)
        await asyncio.gather(*batch_tasks)

    done = [b for b in batch if b["ok"] and window_start <= b["end"] <= stop_at]
    ttfts = [r["ttft"] for r in realtime if r["ttft"] is not None]
    print(json.dumps({
        "url": args.url,
        "realtime_sent": len(realtime),
        "realtime_failed": sum(1 for r in realtime if not r["ok"]),
        "realtime_ttft_p50_s": percentile(ttfts, 50),
        "realtime_ttft_p99_s": percentile(ttfts, 99),
        "batch_completed": len(done),
        "batch_failed": sum(1 for b in batch if not b["ok"]),
        "batch_rps": len(done) / args.duration,
        "batch_tokens_per_s": sum(b["tokens"] for b in done) / args.duration,
    }))


asyncio.run(main())
