"""/metrics of the vLLM stand-in: the Prometheus series vLLM's OpenAI server exposes, by their real names.

Names, types and labels follow vLLM's "Production Metrics" page (docs.vllm.ai, usage/metrics):
gauges ``vllm:num_requests_running`` / ``vllm:num_requests_waiting`` / ``vllm:kv_cache_usage_perc``,
counters ``vllm:prompt_tokens_total`` / ``vllm:generation_tokens_total`` /
``vllm:request_success_total{finished_reason}``, the histogram ``vllm:e2e_request_latency_seconds``;
every series carries ``model_name`` (the served base model) and ``engine``. Text exposition format
0.0.4, which Prometheus scrapes. The values come from the requests this stand-in really answered.
"""

from __future__ import annotations

import threading

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0)


class Recorder:
    """Counters of answered requests (thread-safe: the server answers on several threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success: dict[str, int] = {}
        self.latencies: list[float] = []

    def request_done(self, prompt_tokens: int, generation_tokens: int, finish_reason: str, seconds: float) -> None:
        with self.lock:
            self.prompt_tokens += prompt_tokens
            self.generation_tokens += generation_tokens
            self.success[finish_reason] = self.success.get(finish_reason, 0) + 1
            self.latencies.append(seconds)

    def render(self, model_name: str) -> str:
        base = f'engine="0",model_name="{_escape(model_name)}"'
        with self.lock:
            lines = [
                *_family("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
                         [(base, 0)]),
                *_family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
                         [(base, 0)]),
                *_family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
                         [(base, 0.0)]),
                *_family("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
                         [(base, self.prompt_tokens)]),
                *_family("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
                         [(base, self.generation_tokens)]),
                *_family("vllm:request_success_total", "counter", "Count of successfully processed requests.",
                         [(f'{base},finished_reason="{r}"', n) for r, n in sorted(self.success.items())]
                         or [(f'{base},finished_reason="stop"', 0)]),
                *_histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                            base, self.latencies),
            ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}",
            *(f"{name}{{{labels}}} {float(value)}" for labels, value in samples)]


def _histogram(name: str, help_text: str, base: str, values: list[float]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for bound in LATENCY_BUCKETS:
        lines.append(f'{name}_bucket{{{base},le="{bound}"}} {float(sum(1 for v in values if v <= bound))}')
    lines.append(f'{name}_bucket{{{base},le="+Inf"}} {float(len(values))}')
    lines.append(f"{name}_count{{{base}}} {float(len(values))}")
    lines.append(f"{name}_sum{{{base}}} {float(sum(values))}")
    return lines


RECORDER = Recorder()


def record(result: object, stream: bool, seconds: float) -> None:
    """One answered completion: its usage and finish reason (a stream counts as one request)."""
    if stream or not isinstance(result, dict):
        RECORDER.request_done(0, 0, "stop", seconds)
        return
    usage = result.get("usage") or {}
    reason = ((result.get("choices") or [{}])[0] or {}).get("finish_reason") or "stop"
    RECORDER.request_done(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                          str(reason), seconds)
