"""Server counters and their Prometheus text exposition (format 0.0.4) for GET /metrics."""

from __future__ import annotations

import collections
import math
import time


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            import os
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Metrics:
    def __init__(self):
        self.requests = collections.Counter()      # (endpoint, status) -> count
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.completion_tokens = 0
        self.cancelled = 0
        self.gen_seconds = 0.0
        self.last_tok_s = 0.0
        self.started = time.time()

    def count_request(self, endpoint: str, status: int) -> None:
        self.requests[(endpoint, status)] += 1

    def count_result(self, res) -> None:
        self.prompt_tokens += res.prompt_tokens
        self.cached_tokens += res.cached_tokens
        self.completion_tokens += res.completion_tokens
        self.gen_seconds += res.seconds
        if res.finish_reason == "cancelled":
            self.cancelled += 1
        decode_s = res.seconds - res.ttft_s
        if res.completion_tokens > 1 and decode_s > 0:
            self.last_tok_s = (res.completion_tokens - 1) / decode_s

    def render(self, pool, plan, models, sched=None) -> str:
        lines: list[str] = []

        def metric(name, kind, help_, samples):
            lines.append(f"# HELP edgerun_{name} {help_}")
            lines.append(f"# TYPE edgerun_{name} {kind}")
            for labels, value in samples:
                lab = "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
                lines.append(f"edgerun_{name}{lab} {'NaN' if value != value else value}")

        metric("requests_total", "counter", "HTTP requests by endpoint and status",
               [({"endpoint": e, "status": s}, n) for (e, s), n in sorted(self.requests.items())])
        metric("prompt_tokens_total", "counter", "prompt tokens of finished generations", [({}, self.prompt_tokens)])
        metric("prompt_cached_tokens_total", "counter", "prompt tokens reused from a slot's KV cache",
               [({}, self.cached_tokens)])
        metric("completion_tokens_total", "counter", "generated tokens", [({}, self.completion_tokens)])
        metric("requests_cancelled_total", "counter", "generations stopped by a client disconnect",
               [({}, self.cancelled)])
        metric("generation_seconds_total", "counter", "time spent generating, summed over slots",
               [({}, round(self.gen_seconds, 6))])
        metric("decode_tokens_per_second", "gauge", "decode speed of the last finished generation",
               [({}, round(self.last_tok_s, 3))])
        metric("slots", "gauge", "slots (sessions, each with its own KV cache)", [({}, len(pool.slots))])
        metric("slots_busy", "gauge", "slots generating now", [({}, pool.busy)])
        metric("queue_length", "gauge", "requests waiting for a slot", [({}, pool.queued)])
        metric("queue_capacity", "gauge", "requests that may wait before 429", [({}, pool.max_queue)])
        if sched is not None:
            metric("batch_steps_total", "counter", "batched model steps (one eval over every active slot)",
                   [({}, sched.steps)])
            metric("batch_step_tokens_total", "counter", "tokens evaluated in batched steps (decode + prompt chunks)",
                   [({}, sched.step_tokens)])
            metric("batch_decode_tokens_total", "counter", "decode tokens evaluated in batched steps",
                   [({}, sched.decode_tokens)])
            metric("batch_step_size", "gauge", "tokens in the latest batched step", [({}, sched.last_step_size)])
            metric("batch_decode_slots", "gauge", "slots decoding in the latest batched step",
                   [({}, sched.last_decode_batch)])
            metric("batch_decode_slots_max", "gauge", "the most slots decoding in one step so far",
                   [({}, sched.max_decode_batch)])
            metric("batch_prompt_slots_max", "gauge", "the most slots whose prompts were read in one step so far",
                   [({}, sched.max_prompt_readers)])
            metric("slots_active", "gauge", "slots in the scheduler (reading a prompt or decoding)",
                   [({}, sched.active)])
        hits = sum(m.moe_stats["hits"] for m in models)
        total = hits + sum(m.moe_stats["misses"] for m in models)
        metric("expert_cache_hit_rate", "gauge", "expert cache hits / lookups over all slots (NaN: dense model)",
               [({}, round(hits / total, 6) if total else math.nan)])
        terms = {"process": plan.process, "weights": plan.weights, "slots_private": sum(plan.private),
                 "shared": plan.shared, "total": plan.total}
        metric("memory_plan_bytes", "gauge", "the planned memory: process, weights, the slots' KV caches, shared scratch",
               [({"term": k}, v) for k, v in terms.items()])
        metric("memory_budget_bytes", "gauge", "--mem (0: none)", [({}, plan.budget or 0)])
        metric("process_resident_bytes", "gauge", "VmRSS now",
               [({}, _rss_bytes())])
        return "\n".join(lines) + "\n"
