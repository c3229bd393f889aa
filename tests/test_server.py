"""edgerun serve against the real `openai` client and raw HTTP, on 127.0.0.1, with a tiny model (a
tokenizer and ChatML template; trained context 4096 so that a long generation can be cut off)."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from edgeconv.cli import main as edgeconv_main  # noqa: E402
from edgerun.cli import build_parser  # noqa: E402
from models.tiny import make_tiny  # noqa: E402

CHILD_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
KEY = "sk-test-key"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    make_tiny("llama", seed=3, dir=root / "hf", max_position_embeddings=4096)
    out = root / "tiny.edge"
    assert edgeconv_main(["export", str(root / "hf"), "-o", str(out), "--quant", "q8", "--quiet"]) in (0, None)
    return str(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """`edgerun serve ARGS` in a background thread of this process (uvicorn.Server, no signal handlers)."""

    def __init__(self, *argv):
        import uvicorn
        from edgerun.server.main import build
        self.port = free_port()
        args = build_parser().parse_args(["serve", *argv, "--port", str(self.port)])
        self.srv, config = build(args)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)
        self.srv.executor.shutdown(wait=True)


@pytest.fixture(scope="module")
def server(model_path):
    r = Running(model_path, "--parallel", "2", "--ctx", "4096", "--api-key", KEY, "--queue", "4")
    yield r
    r.stop()


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def metric(server, name):
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    for line in text.splitlines():
        if line.startswith(f"edgerun_{name} "):
            return float(line.split()[1])
    raise AssertionError(f"edgerun_{name} not in /metrics:\n{text}")


def cli_generate(model_path, *args):
    r = subprocess.run([sys.executable, "-m", "edgerun.cli", "generate", model_path, "--json", *args],
                       capture_output=True, text=True, timeout=120, env=CHILD_ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    h = httpx.get(server.url + "/health").json()
    assert h["status"] == "ok" and h["slots"] == 2


def test_completion_equals_edgerun_generate(server, client, model_path):
    want = cli_generate(model_path, "-p", "hello world", "-n", "12", "--temp", "1", "--seed", "5")
    for i in range(2):  # the second request reuses the slot's cached prompt: the same text
        r = client.completions.create(model="tiny", prompt="hello world", max_tokens=12, temperature=1, seed=5)
        assert r.choices[0].text == want["text"]
        assert r.usage.prompt_tokens_details.cached_tokens == (0 if i == 0 else r.usage.prompt_tokens - 1)
        n_gen = len(want["tokens"]) - (1 if want["tokens"][-1] == 2 else 0)  # 2 = EOS, not counted
        assert r.usage.prompt_tokens == want["prompt_tokens"] and r.usage.completion_tokens == n_gen
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert r.choices[0].finish_reason == ("length" if n_gen == 12 else "stop")


def test_chat_equals_edgerun_generate_chat(server, client, model_path):
    want = cli_generate(model_path, "-p", "hi there", "--chat", "-n", "10", "--temp", "0")
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi there"}],
                                       max_tokens=10, temperature=0)
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == want["text"]
    assert r.usage.prompt_tokens == want["prompt_tokens"] and 1 <= r.usage.completion_tokens <= 10


def test_streaming_equals_non_streaming(client):
    kw = dict(model="tiny", max_tokens=16, temperature=0.9, seed=11)
    full = client.chat.completions.create(messages=[{"role": "user", "content": "tell me"}], **kw)
    chunks = list(client.chat.completions.create(messages=[{"role": "user", "content": "tell me"}], stream=True,
                                                 stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == full.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    comp = client.completions.create(model="tiny", prompt="abc", max_tokens=9, temperature=0)
    parts = list(client.completions.create(model="tiny", prompt="abc", max_tokens=9, temperature=0, stream=True))
    assert "".join(p.choices[0].text for p in parts) == comp.choices[0].text


def test_stop_sequences(client):
    kw = dict(model="tiny", prompt="the", max_tokens=40, temperature=1)
    for seed in range(10):  # a seed whose text is long enough to cut
        base = client.completions.create(seed=seed, **kw).choices[0].text
        if len(base) >= 6 and "\ufffd" not in base[:6]:
            break
    assert len(base) >= 6, base
    stop = base[3:5]  # a string the unconstrained text contains: the reply ends just before it
    cut = base[:base.find(stop)]
    r = client.completions.create(seed=seed, stop=[stop, "\x00"], **kw)
    assert r.choices[0].text == cut and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens < len(base.encode())  # generation stopped early
    s = client.completions.create(seed=seed, stop=stop, stream=True, **kw)
    assert "".join(p.choices[0].text for p in s) == cut


def post(server, path, body: bytes, key=KEY, ctype="application/json"):
    headers = {"Content-Type": ctype}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(server.url + path, content=body, headers=headers, timeout=30)


def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(server, client):
    ok = json.dumps({"model": "tiny", "prompt": "x", "max_tokens": 2}).encode()
    cases = [
        (b"{not json", KEY, 400, "invalid_json"),
        (json.dumps({"model": "nope", "prompt": "x"}).encode(), KEY, 404, "model_not_found"),
        (json.dumps({"model": "tiny", "prompt": "x", "max_tokens": -1}).encode(), KEY, 400, "invalid_value"),
        (json.dumps({"model": "tiny", "prompt": "x", "n": 2}).encode(), KEY, 400, "invalid_value"),
        (json.dumps({"model": "tiny", "prompt": "x", "temperature": "hot"}).encode(), KEY, 400, "invalid_type"),
        (json.dumps({"model": "tiny", "prompt": "ab " * 3000}).encode(), KEY, 400, "context_length_exceeded"),
        (b'{"model": "tiny", "prompt": "' + b"a" * (10 << 20) + b'"}', KEY, 413, "body_too_large"),
        (ok, "sk-wrong", 401, "invalid_api_key"),
        (ok, None, 401, "invalid_api_key"),
    ]
    for body, key, status, code in cases:
        r = post(server, "/v1/completions", body, key)
        assert r.status_code == status, (status, r.text[:300])
        err = r.json()["error"]
        assert err["code"] == code and err["message"] and set(err) == {"message", "type", "param", "code"}
        assert post(server, "/v1/completions", ok).status_code == 200  # still serving
    r = httpx.get(server.url + "/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="bad", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="other", prompt="x", max_tokens=1)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=-3)


def test_disconnect_mid_stream_frees_the_slot(server):
    before = metric(server, "requests_cancelled_total")
    body = {"model": "tiny", "prompt": "go", "max_tokens": 4000, "temperature": 1, "seed": 1, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        while not next(lines).startswith("data: {"):
            pass
        assert metric(server, "slots_busy") == 1
    # one chunk read, then the client went away
    deadline = time.time() + 10
    while (metric(server, "slots_busy") or metric(server, "requests_cancelled_total") == before):
        assert time.time() < deadline, "the slot was not freed after the client went away"
        time.sleep(0.05)
    assert metric(server, "requests_cancelled_total") == before + 1
    assert metric(server, "completion_tokens_total") > 0


def test_disconnect_of_a_plain_request_frees_the_slot(server):
    before = metric(server, "requests_cancelled_total")
    body = {"model": "tiny", "prompt": "go", "max_tokens": 4000, "temperature": 1, "seed": 1}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up long before 4000 tokens
        httpx.post(server.url + "/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=0.2)
    deadline = time.time() + 10
    while metric(server, "slots_busy") or metric(server, "requests_cancelled_total") == before:
        assert time.time() < deadline, "the slot was not freed after the client went away"
        time.sleep(0.05)
    assert metric(server, "requests_cancelled_total") == before + 1


def test_concurrent_requests_use_both_slots(server, client):
    async def many():
        ac = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)
        outs = await asyncio.gather(*[ac.completions.create(model="tiny", prompt=f"p{i}", max_tokens=8, temperature=0)
                                      for i in range(6)])  # 2 slots + 4 queued: all fit
        await ac.close()
        return outs
    outs = asyncio.run(many())
    assert all(o.usage.completion_tokens >= 1 for o in outs)
    assert all(s.requests > 0 for s in server.srv.pool.slots)
    assert metric(server, "queue_length") == 0 and metric(server, "slots_busy") == 0


def test_full_queue_gets_429_and_the_server_keeps_serving(model_path):
    r1 = Running(model_path, "--parallel", "1", "--queue", "0", "--ctx", "4096")
    try:
        body = {"model": "tiny", "prompt": "go", "max_tokens": 4000, "temperature": 1, "seed": 1, "stream": True}
        with httpx.stream("POST", r1.url + "/v1/completions", json=body, timeout=30) as r:
            lines = r.iter_lines()  # (kept: closing the iterator closes the connection)
            while not next(lines).startswith("data: {"):  # the one slot is busy
                pass
            busy = httpx.post(r1.url + "/v1/completions", json=dict(body, stream=False, max_tokens=2), timeout=30)
        assert busy.status_code == 429 and busy.json()["error"]["code"] == "queue_full"
        c = openai.OpenAI(base_url=r1.url + "/v1", api_key="unused", max_retries=0, timeout=30)
        deadline = time.time() + 10
        while r1.srv.pool.busy:  # the stream's generation stops after the disconnect
            assert time.time() < deadline
            time.sleep(0.02)
        assert c.completions.create(model="tiny", prompt="x", max_tokens=2).usage.completion_tokens >= 1
    finally:
        r1.stop()


def test_metrics_text(server):
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    for name in ("requests_total", "completion_tokens_total", "queue_length", "decode_tokens_per_second",
                 "expert_cache_hit_rate", "memory_plan_bytes"):
        assert f"# TYPE edgerun_{name} " in text
    assert 'edgerun_requests_total{endpoint="/v1/completions",status="200"}' in text
    assert 'edgerun_memory_plan_bytes{term="weights"}' in text
    assert httpx.get(server.url + "/metrics").status_code == 401


def test_slot_queue_is_bounded():
    from edgerun.server.slots import QueueFull, SlotPool

    class FakeModel:
        def __init__(self, cached):
            self._cached = cached

    async def scenario():
        pool = SlotPool.of([FakeModel([1, 2, 3]), FakeModel([7, 8, 9])], max_queue=1)
        a = await pool.acquire([7, 8, 5])          # the slot sharing the prefix [7, 8]
        assert a.index == 1
        b = await pool.acquire([1])
        waiter = asyncio.ensure_future(pool.acquire([4]))
        await asyncio.sleep(0)
        assert pool.queued == 1
        with pytest.raises(QueueFull):
            await pool.acquire([5])
        pool.release(a)
        assert (await waiter) is a and pool.queued == 0
        pool.release(a), pool.release(b)
        assert pool.busy == 0
    asyncio.run(scenario())


def test_parallel_slots_must_fit_the_budget(model_path):
    from edgerun import MemoryBudgetError, Model
    from edgerun.server.plan import load_slots, private_bytes
    probe = Model(model_path, ctx=4096, mem="4GB", mem_scope="process")
    one, weights, process = private_bytes(probe.memory_plan), probe.memory_plan["resident"], probe.memory_plan["process"]
    budget = process + weights + 2 * one + one // 2  # room for 2 slots, not 3 (+ RSS growth slack below one/2)
    models, plan = load_slots(model_path, 2, budget, 4096, 1)
    assert len(models) == 2 and plan.total <= budget and plan.weights == weights
    with pytest.raises(MemoryBudgetError, match="--parallel 3 needs"):
        load_slots(model_path, 3, budget + one // 4, 4096, 1)


def test_sigterm_drains_a_running_stream_and_exits(model_path):
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "edgerun.cli", "serve", model_path, "--port", str(port), "--ctx", "512"],
                         stderr=subprocess.PIPE, text=True, env=CHILD_ENV)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert p.poll() is None and time.time() < deadline, "server did not start"
            time.sleep(0.1)
        body = {"model": "tiny", "prompt": "go", "max_tokens": 400, "temperature": 1, "seed": 2, "stream": True}
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=30) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
            p.terminate()  # SIGTERM while the stream runs: it still ends with [DONE]
            rest = list(lines)
        assert "data: [DONE]" in rest
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_chat_page_is_self_contained_and_its_endpoints_answer(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<script" in page and "/v1/chat/completions" in page and "getReader" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page  # nothing from a CDN
    plan = httpx.get(server.url + "/plan").json()
    assert plan["model"] == "tiny" and plan["parallel"] == 2 and "slot(s)" in plan["text"]
    assert plan["weights"] > 0 and len(plan["private_per_slot"]) == 2


def test_serve_refuses_slots_over_the_budget_before_listening(model_path):
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "edgerun.cli", "serve", model_path, "--port", str(port), "--parallel", "64",
                        "--ctx", "4096", "--mem", "120MB"], capture_output=True, text=True, timeout=120, env=CHILD_ENV)
    assert r.returncode == 2 and "--parallel 64 needs" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_smollm2_chat_equals_edgerun_generate():
    from edgerun.defaults import default_model
    try:
        path = default_model(quiet=True)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    r = Running(path, "--ctx", "512", "--alias", "smol")
    try:
        c = openai.OpenAI(base_url=r.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        got = c.chat.completions.create(model="smol", messages=[{"role": "user", "content": "What is 2+2?"}],
                                        max_tokens=16, temperature=0)
    finally:
        r.stop()
    want = cli_generate(path, "-p", "What is 2+2?", "--chat", "-n", "16", "--temp", "0", "--ctx", "512")
    assert got.choices[0].message.content == want["text"].split("<|im_end|>")[0] and want["text"]
    assert got.usage.prompt_tokens == want["prompt_tokens"]


def test_chat_page_streams_a_reply_in_a_real_browser(server, tmp_path):
    """Debian's chromium, headless, through selenium + chromium-driver (skipped where they are missing)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    chrome = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)
    if chrome is None or not os.path.exists("/usr/bin/chromedriver"):
        pytest.skip("needs Debian's chromium and chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,700"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"), options=opts)
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(server.url + "/")
        wait.until(lambda d: "slot(s)" in d.find_element(By.ID, "plan").text)
        driver.find_element(By.ID, "key").send_keys(KEY)
        driver.find_element(By.ID, "input").send_keys("hello there")
        driver.find_element(By.ID, "send").click()
        out = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".msg.assistant[data-state=done], .msg.error"))
        assert "assistant" in out.get_attribute("class"), out.text
        assert out.text.strip() and int(out.get_attribute("data-pieces")) >= 2  # streamed in pieces
        assert "tok/s" in driver.find_element(By.CLASS_NAME, "stats").text
        driver.save_screenshot(str(tmp_path / "chat.png"))
        driver.find_element(By.ID, "reset").click()
        assert driver.find_elements(By.CSS_SELECTOR, ".msg") == []
    finally:
        driver.quit()


def test_template_refusal_is_400_and_an_internal_error_is_an_openai_500(server, client, monkeypatch):
    from edgerun.chat import ChatTemplate
    monkeypatch.setattr(server.srv, "template", ChatTemplate("{{ raise_exception('roles must alternate') }}"))
    with pytest.raises(openai.BadRequestError, match="roles must alternate"):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=1)

    def broken(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(server.srv.template, "render", broken)
    r = post(server, "/v1/chat/completions", json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x"}]}).encode())
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error" and "boom" in r.json()["error"]["message"]
    monkeypatch.undo()
    assert client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}],
                                          max_tokens=1).usage.completion_tokens <= 1


# ---- batched slots (scheduler.py), logprobs, draining ----------------------------------------------------

def test_four_batched_slots_give_each_client_edgerun_generate_text(model_path):
    """4 clients at once on --parallel 4: their decode steps run batched (metrics show >= 2 slots in one
    step) and each gets the text `edgerun generate` gives for its prompt and seed."""
    r4 = Running(model_path, "--parallel", "4", "--ctx", "1024")
    prompts = [("hello world", 3), ("the cat sat", 4), ("one two three four five", 5), ("x", 6)]
    try:
        async def many():
            ac = openai.AsyncOpenAI(base_url=r4.url + "/v1", api_key="unused", max_retries=0, timeout=120)
            outs = await asyncio.gather(*[ac.completions.create(model="tiny", prompt=p, max_tokens=300, temperature=1,
                                                                seed=s) for p, s in prompts])
            await ac.close()
            return outs
        outs = asyncio.run(many())
        sched = r4.srv.scheduler
        assert sched.max_decode_batch >= 2 and sched.decode_tokens > sched.steps  # steps held several slots
        text = httpx.get(r4.url + "/metrics").text
        assert "edgerun_batch_decode_slots_max " in text and "edgerun_batch_steps_total " in text
    finally:
        r4.stop()
    for (p, s), o in zip(prompts, outs):
        want = cli_generate(model_path, "-p", p, "-n", "300", "--temp", "1", "--seed", str(s), "--ctx", "1024")
        assert o.choices[0].text == want["text"], (p, s)
        assert o.usage.prompt_tokens == want["prompt_tokens"]


def test_chat_logprobs_in_openai_shape(server, client, model_path):
    from edgerun import Model
    kw = dict(model="tiny", messages=[{"role": "user", "content": "tell me"}], max_tokens=8, temperature=0)
    r = client.chat.completions.create(logprobs=True, top_logprobs=3, **kw)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert b"".join(bytes(e.bytes) for e in content).decode("utf-8", "replace") == r.choices[0].message.content
    for e in content:
        tops = [t.logprob for t in e.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True) and all(lp <= 0 for lp in tops)
        assert e.logprob == tops[0] and e.token == e.top_logprobs[0].token  # greedy: the most likely token
    # the first token's logprob is log-softmax of the model's logits after the prompt
    m = Model(model_path, ctx=512)
    text = server.srv.template.render(kw["messages"], add_generation_prompt=True)
    lg = m.eval(m.tokenize(text, add_bos=False)).astype(np.float64)
    lse = lg.max() + np.log(np.exp(lg - lg.max()).sum())
    assert abs(content[0].logprob - (lg.max() - lse)) < 1e-9
    plain = client.chat.completions.create(**kw)
    assert plain.choices[0].logprobs is None and plain.choices[0].message.content == r.choices[0].message.content
    chunks = list(client.chat.completions.create(logprobs=True, top_logprobs=3, stream=True, **kw))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in content]
    for bad in ({"top_logprobs": 2}, {"logprobs": True, "top_logprobs": 21}, {"logprobs": "yes"}):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(**kw, extra_body=bad)


def test_completion_logprobs_in_openai_shape(client):
    kw = dict(model="tiny", prompt="abc", max_tokens=6, temperature=0)
    r = client.completions.create(logprobs=2, **kw)
    lp = r.choices[0].logprobs
    n = r.usage.completion_tokens
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == n
    assert all(len(t) == 2 for t in lp.top_logprobs)
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(n)]
    assert all(max(t.values()) == v for t, v in zip(lp.top_logprobs, lp.token_logprobs))  # greedy
    parts = list(client.completions.create(logprobs=2, stream=True, **kw))
    assert [t for p in parts if p.choices[0].logprobs for t in p.choices[0].logprobs.tokens] == lp.tokens
    assert [o for p in parts if p.choices[0].logprobs for o in p.choices[0].logprobs.text_offset] == lp.text_offset
    assert client.completions.create(**kw).choices[0].logprobs is None
    with pytest.raises(openai.BadRequestError):
        client.completions.create(logprobs=99, **kw)


def test_draining_server_answers_503(server, client):
    server.srv.draining = True
    try:
        r = post(server, "/v1/completions", json.dumps({"model": "tiny", "prompt": "x", "max_tokens": 2}).encode())
        assert r.status_code == 503 and r.json()["error"]["code"] == "server_shutting_down"
        assert httpx.get(server.url + "/health").status_code == 503
    finally:
        server.srv.draining = False
    assert client.completions.create(model="tiny", prompt="x", max_tokens=2).usage.completion_tokens >= 1


def test_several_prompts_are_read_in_one_step_and_each_gets_generate_text(model_path):
    """Three requests that arrive together: the first step reads all three prompts (one eval_batch, the
    reading slots oldest first) and each request still gets Model.generate's seeded text."""
    from edgerun import Model
    from edgerun.server import generation
    from edgerun.server.plan import load_slots
    from edgerun.server.scheduler import Scheduler
    seqs, _ = load_slots(model_path, 3, None, 512, 1)
    sched = Scheduler(seqs[0].model)
    gate = threading.Event()
    sched.executor.submit(gate.wait)  # holds the scheduler thread until all three are submitted
    prompts = [("hello world", 3), ("the cat sat on the mat", 4), ("one two three", 5)]
    ref = Model(model_path, ctx=512, threads=1)

    async def collect(q):
        text = ""
        while True:
            kind, value = await q.get()
            if kind == "done":
                return text, value
            if kind == "text":
                text += value

    async def run():
        loop = asyncio.get_running_loop()
        queues = []
        for seq, (p, s) in zip(seqs, prompts):
            job = generation.Job(ref.tokenize(p), 40, dict(temperature=1.0, seed=s), {ref.eos_id})
            queues.append(sched.submit(loop, seq, job)[0])
        gate.set()
        return await asyncio.gather(*[collect(q) for q in queues])

    try:
        outs = asyncio.run(run())
    finally:
        sched.shutdown()
    assert sched.max_prompt_readers == 3
    for (p, s), (text, res) in zip(prompts, outs):
        assert res.error is None and res.completion_tokens > 0
        assert text == "".join(ref.generate(p, 40, temperature=1.0, seed=s)), (p, s)
