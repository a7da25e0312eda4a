#!/usr/bin/env python3
"""End-to-end tests of `loraserve serve` on loopback with the demo model (standard library only).

Raw HTTP and SSE are checked byte by byte here; tests/e2e/openai_client_test.mjs drives the same
server through the official OpenAI Node client when its npm package is installed (see
scripts/test.sh). Usage: server_e2e.py LORASERVE_BINARY [NODE_MODULES_DIR]
Exit code 0 when every check passed; each failure is printed with its name."""
import asyncio, http.client, json, os, re, resource, shutil, signal, socket, subprocess, sys
import tempfile, threading, time

BIN = sys.argv[1]
NODE_MODULES = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 and os.path.isdir(os.path.join(sys.argv[2], "openai")) else ""
KEY = "sk-test-key"
FAILURES = []


def check(name, cond, detail=""):
    if not cond:
        FAILURES.append(name)
        print(f"FAIL {name} {detail}"[:2000], flush=True)
    return cond


class Server:
    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen([BIN, "serve", "--port", "0", *args], stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, env=env, text=True)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            raise RuntimeError("server did not start: " + (self.proc.stderr.read() or ""))
        self.log = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def request(self, method, path, body=None, headers=None, key=KEY, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        h = {"Content-Type": "application/json"}
        if key:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        conn.close()
        try:
            j = json.loads(text)
        except ValueError:
            j = None
        if path != "/metrics":
            self.last = (method, path, data if data is None else data[:300], r.status, text[:1000])
        return r.status, j, text, dict(r.getheaders())

    def metrics(self):
        _, _, text, _ = self.request("GET", "/metrics", key=None)
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, value = line.rsplit(" ", 1)
            out[re.sub(r"\{.*\}", "", name)] = out.get(re.sub(r"\{.*\}", "", name), 0) + float(value)
        return out, text

    def wait_metric(self, name, value, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m, _ = self.metrics()
            if m.get(name) == value:
                return True
            time.sleep(0.05)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=60):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def sse_events(text):
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        events.append(block[len("data: "):])
    return events


def error_shape(j):
    return (isinstance(j, dict) and isinstance(j.get("error"), dict)
            and {"message", "type", "param", "code"} <= set(j["error"]))


def main():
    tmp = tempfile.mkdtemp(prefix="loraserve_server_e2e_")
    demo = os.path.join(tmp, "demo")
    subprocess.run([BIN, "make-demo", demo], check=True, stdout=subprocess.DEVNULL)
    root = os.path.join(demo, "adapters")
    # An adapter outside the root, and a symlink inside the root that points to it.
    outside = os.path.join(tmp, "outside")
    shutil.copytree(os.path.join(root, "poet"), outside)
    os.symlink(outside, os.path.join(root, "escape"))
    model = os.path.join(demo, "model")
    s = Server("--model", model, "--served-model-name", "demo", "--lora",
               "pirate=" + os.path.join(root, "pirate"), "--lora-root", root, "--api-key", KEY,
               "--enable-lora-loading", "--max-queue", "5000", "--max-body-bytes", "65536",
               "--max-num-seqs", "64", "--shutdown-timeout", "60")
    try:
        try:
            run_checks(s, tmp, model, root, outside)
        except Exception:  # print what the server answered last, then fail
            import traceback
            traceback.print_exc()
            check("checks ran to the end", False, getattr(s, "last", None))
        if NODE_MODULES:
            run_node(s)
        else:
            print("SKIP openai Node client test: no node_modules with the 'openai' package "
                  "(scripts/test.sh installs it with npm when the registry is reachable)")
        load_test(s)
        drain_test(s)
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
        elif s.proc.returncode != 0:
            check("server alive", False, "".join(s.log)[:8000])
    queue_full_test(model)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"server_e2e: {len(FAILURES)} failure(s)" + (": " + ", ".join(FAILURES) if FAILURES else ""))
    return 1 if FAILURES else 0


def run_checks(s, tmp, model, root, outside):
    st, _, _, _ = s.request("GET", "/health", key=None)
    check("health 200", st == 200, st)
    st, j, _, _ = s.request("GET", "/version", key=None)
    check("version", st == 200 and "version" in j, j)
    # Auth: inference routes only.
    for key in (None, "wrong"):
        st, j, _, h = s.request("GET", "/v1/models", key=key)
        check(f"401 with key {key}", st == 401 and error_shape(j) and j["error"]["code"] == "invalid_api_key", (st, j))
    st, _, _, _ = s.request("GET", "/metrics", key=None)
    check("metrics open", st == 200)
    # Models: base and adapters with parent (pirate registered, poet/coder from --lora-root).
    st, j, _, _ = s.request("GET", "/v1/models")
    ids = {m["id"]: m for m in j["data"]}
    check("models list", st == 200 and j["object"] == "list" and ids["demo"]["parent"] is None
          and ids["pirate"]["parent"] == "demo" and "poet" in ids and "coder" in ids, j)

    # Greedy completions equal `loraserve generate` for the same prompt ids.
    prompt_ids = [1, 15, 300, 42]
    gen = subprocess.run([BIN, "generate", "--model", model, "--lora", "pirate=" + os.path.join(root, "pirate"),
                          "--adapter", "pirate", "--prompt-ids", ",".join(map(str, prompt_ids)),
                          "--max-tokens", "12"], capture_output=True, text=True)
    want = json.loads(gen.stdout)["tokens"]
    st, j, _, _ = s.request("POST", "/v1/completions", {"model": "pirate", "prompt": prompt_ids, "max_tokens": 12,
                                                        "temperature": 0, "logprobs": 3, "ignore_eos": True})
    check("completion 200", st == 200, j)
    c = j["choices"][0]
    lp = c["logprobs"]
    check("completion shape", j["object"] == "text_completion" and j["id"].startswith("cmpl-")
          and isinstance(j["created"], int) and j["model"] == "pirate" and c["finish_reason"] == "length"
          and j["usage"] == {"prompt_tokens": 4, "completion_tokens": 12, "total_tokens": 16}, j)
    check("logprobs shape", len(lp["tokens"]) == 12 and len(lp["token_logprobs"]) == 12
          # (alternatives whose texts coincide, e.g. two invalid bytes, share a key, as in OpenAI's format)
          and all(1 <= len(t) <= 3 for t in lp["top_logprobs"]) and lp["text_offset"][0] == 0, lp)
    st2, j2, _, _ = s.request("POST", "/v1/completions", {"model": "pirate", "prompt": prompt_ids, "max_tokens": 12,
                                                          "temperature": 0, "logprobs": 0, "ignore_eos": True})
    # The tokens' texts concatenate to the text when no bytes are held back.
    base = s.request("POST", "/v1/completions", {"model": "demo", "prompt": prompt_ids, "max_tokens": 12,
                                                  "temperature": 0, "ignore_eos": True})[1]
    check("adapter changes output", base["choices"][0]["text"] != c["text"])
    check("repeatable greedy", j2["choices"][0]["text"] == c["text"])
    # The server and the CLI agree token for token: compare through the token log-probs list.
    st, jt, _, _ = s.request("POST", "/v1/completions", {"model": "pirate", "prompt": prompt_ids, "max_tokens": 12,
                                                          "temperature": 0, "logprobs": 1, "ignore_eos": True})
    top_ids_text = [list(t.keys())[0] for t in jt["choices"][0]["logprobs"]["top_logprobs"]]
    check("greedy token == top-1", top_ids_text == jt["choices"][0]["logprobs"]["tokens"], top_ids_text)
    # The server's greedy text equals `loraserve generate --prompt` (same tokenizer, same engine).
    gen = subprocess.run([BIN, "generate", "--model", model, "--lora", "pirate=" + os.path.join(root, "pirate"),
                          "--adapter", "pirate", "--prompt", "Hello, world", "--max-tokens", "12"],
                         capture_output=True, text=True)
    st, jg, _, _ = s.request("POST", "/v1/completions", {"model": "pirate", "prompt": "Hello, world",
                                                          "max_tokens": 12, "temperature": 0, "ignore_eos": True})
    check("greedy text == generate", gen.returncode == 0 and st == 200
          and json.loads(gen.stdout)["text"] == jg["choices"][0]["text"], (gen.stdout, gen.stderr, jg))

    # Text prompt, list of prompts, n > 1 with seed.
    st, j, _, _ = s.request("POST", "/v1/completions", {"model": "poet", "prompt": ["Hello, world", "The sea"],
                                                        "max_tokens": 5, "n": 3, "seed": 7, "temperature": 1.0})
    check("n x prompts", st == 200 and [c["index"] for c in j["choices"]] == list(range(6)), j)
    st, j_again, _, _ = s.request("POST", "/v1/completions", {"model": "poet", "prompt": ["Hello, world", "The sea"],
                                                              "max_tokens": 5, "n": 3, "seed": 7, "temperature": 1.0})
    check("seeded sampling repeats", [c["text"] for c in j["choices"]] == [c["text"] for c in j_again["choices"]])

    # Stop strings: the text ends right before the stop, finish_reason stop.
    full = s.request("POST", "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0,
                                                  "ignore_eos": True})[1]["choices"][0]["text"]
    clean = [i for i in range(3, len(full) - 2) if full[i:i + 2].isascii() and full[i:i + 2].strip()]
    if check("long enough text for stop test", len(clean) > 0, full):
        i = clean[len(clean) // 2]
        stop = full[i:i + 2]
        j = s.request("POST", "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0,
                                                   "ignore_eos": True, "stop": [stop, "never-there"]})[1]
        got = j["choices"][0]
        check("stop string", got["finish_reason"] == "stop" and got["text"] == full[:full.index(stop)],
              (stop, got, full))
        # Streaming with the stop: same text.
        st, _, text, h = s.request("POST", "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 40,
                                                              "temperature": 0, "ignore_eos": True, "stop": stop,
                                                              "stream": True})
        ev = sse_events(text)
        streamed = "".join(json.loads(e)["choices"][0]["text"] for e in ev[:-1] if json.loads(e)["choices"])
        check("stream stop", ev[-1] == "[DONE]" and streamed == got["text"], (streamed, got["text"]))

    # Chat, whole and streamed, with logprobs and usage.
    msgs = [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Hello!"}]
    st, j, _, _ = s.request("POST", "/v1/chat/completions", {"model": "pirate", "messages": msgs, "max_tokens": 6,
                                                             "temperature": 0, "logprobs": True, "top_logprobs": 2,
                                                             "ignore_eos": True})
    ch = j["choices"][0] if st == 200 else {}
    check("chat shape", st == 200 and j["object"] == "chat.completion" and j["id"].startswith("chatcmpl-")
          and ch["message"]["role"] == "assistant" and len(ch["logprobs"]["content"]) == 6
          and all(len(e["top_logprobs"]) == 2 and "bytes" in e for e in ch["logprobs"]["content"]), j)
    st, _, text, h = s.request("POST", "/v1/chat/completions", {"model": "pirate", "messages": msgs, "max_tokens": 6,
                                                                "temperature": 0, "stream": True, "ignore_eos": True,
                                                                "stream_options": {"include_usage": True}})
    ev = sse_events(text)
    chunks = [json.loads(e) for e in ev[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    check("chat stream", st == 200 and h.get("Content-Type", "").startswith("text/event-stream")
          and ev[-1] == "[DONE]" and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
          and content == ch.get("message", {}).get("content") and chunks[-1]["usage"]["completion_tokens"] == 6
          and all(c["object"] == "chat.completion.chunk" for c in chunks), text[:3000])
    finals = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    check("chat stream finish", finals[-1] == "length" and all(f is None for f in finals[:-1]), finals)

    # Errors: each class with OpenAI's body.
    def expect(name, status, code_or_param, method="POST", path="/v1/completions", body=None, raw=None, key=KEY):
        st, j, text, h = s.request(method, path, body, raw=raw, key=key)
        ok = st == status and error_shape(j)
        if ok and code_or_param:
            ok = code_or_param in (j["error"].get("code"), j["error"].get("param"))
        check(name, ok, (st, text[:500]))
        return j, h
    expect("400 invalid json", 400, None, raw="{not json")
    expect("400 not an object", 400, None, raw="[1,2]")
    expect("400 missing prompt", 400, "prompt", body={"max_tokens": 3})
    expect("400 bad type", 400, "max_tokens", body={"prompt": "a", "max_tokens": "many"})
    expect("400 temperature range", 400, "temperature", body={"prompt": "a", "temperature": 3})
    expect("400 n bound", 400, "n", body={"prompt": "a", "n": 1000})
    expect("400 top_logprobs bound", 400, "top_logprobs",
           path="/v1/chat/completions", body={"messages": msgs, "logprobs": True, "top_logprobs": 21})
    expect("400 too many stops", 400, "stop", body={"prompt": "a", "stop": ["x"] * 17})
    expect("400 stop too long", 400, "stop", body={"prompt": "a", "stop": "x" * 300})
    expect("400 token out of vocab", 400, "prompt", body={"prompt": [1, 99999]})
    j, _ = expect("400 context length", 400, "context_length_exceeded", body={"prompt": "a", "max_tokens": 5000})
    check("context message", "maximum context length is 1024 tokens" in j["error"]["message"], j)
    j, _ = expect("400 chat context", 400, "context_length_exceeded", path="/v1/chat/completions",
                  body={"messages": msgs, "max_tokens": 5000})
    check("chat context message", "in the messages" in j["error"]["message"], j)
    expect("404 unknown model", 404, "model_not_found", body={"prompt": "a", "model": "nope"})
    expect("404 model path escape", 404, "model_not_found", body={"prompt": "a", "model": "../outside"})
    expect("413 body too large", 413, None, body={"prompt": "a" * 70000})
    expect("405 wrong method", 405, None, method="GET")
    expect("404 no route", 404, None, path="/v1/nothing")
    # Order: ranges before tokenizing before model: a bad range with an unknown model is a 400.
    expect("400 before 404", 400, "n", body={"prompt": "a", "model": "nope", "n": 0})

    # Runtime load/unload confined to --lora-root.
    for name, path in [("dots", "../../outside"), ("abs", outside), ("link", os.path.join(root, "escape")),
                       ("rel_link", "escape"), ("etc", "/etc")]:
        st, j, text, _ = s.request("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})
        check(f"load refused {name}", st == 400 and "outside --lora-root" in text, (st, text))
    st, j, text, _ = s.request("POST", "/v1/load_lora_adapter", {"lora_name": "ghost", "lora_path": "missing"})
    check("load missing path 404", st == 404, (st, text))
    st, _, text, _ = s.request("POST", "/v1/load_lora_adapter", {"lora_name": "coder2", "lora_path": "coder"})
    check("load ok", st == 200 and "coder2" in text, (st, text))
    st, _, text, _ = s.request("POST", "/v1/load_lora_adapter", {"lora_name": "coder2", "lora_path": "coder"})
    check("load duplicate 400", st == 400, (st, text))
    st, j, _, _ = s.request("POST", "/v1/completions", {"model": "coder2", "prompt": "Hi", "max_tokens": 3})
    check("loaded adapter serves", st == 200, j)
    st, _, text, _ = s.request("POST", "/v1/unload_lora_adapter", {"lora_name": "coder2"})
    check("unload ok", st == 200, (st, text))
    st, j, _, _ = s.request("POST", "/v1/completions", {"model": "coder2", "prompt": "Hi", "max_tokens": 3})
    check("unloaded adapter 404", st == 404, (st, j))
    st, j, _, _ = s.request("POST", "/v1/unload_lora_adapter", {"lora_name": "coder2"})
    check("unload unknown 404", st == 404 and error_shape(j), (st, j))
    st, j, _, _ = s.request("POST", "/v1/load_lora_adapter", {"lora_name": 3})
    check("load bad body 400", st == 400 and error_shape(j), (st, j))

    # A client that disconnects mid-stream: its request is cancelled, its pages freed.
    m0, _ = s.metrics()
    sock = socket.create_connection(("127.0.0.1", s.port))
    body = json.dumps({"prompt": "Once", "max_tokens": 900, "stream": True, "ignore_eos": True})
    sock.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
    got = b""
    while got.count(b"data: ") < 3:
        got += sock.recv(4096)
    m1, _ = s.metrics()
    check("stream running", m1.get("vllm:num_requests_running", 0) >= 1 and m1.get("loraserve:pages_kv", 0) > 0, m1)
    sock.close()
    check("disconnect frees pages", s.wait_metric("loraserve:pages_kv", 0.0, 5.0)
          and s.wait_metric("vllm:num_requests_running", 0.0, 5.0))
    # Non-streaming client that leaves while waiting.
    sock = socket.create_connection(("127.0.0.1", s.port))
    body = json.dumps({"prompt": "Once", "max_tokens": 900, "ignore_eos": True})
    sock.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
    deadline = time.time() + 5
    while time.time() < deadline and s.metrics()[0].get("loraserve:pages_kv", 0) == 0:
        time.sleep(0.02)
    sock.close()
    check("non-stream disconnect frees pages", s.wait_metric("loraserve:pages_kv", 0.0, 5.0))
    m, text = s.metrics()
    for name in ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:num_preemptions_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
                 "vllm:request_success_total", "vllm:time_to_first_token_seconds_bucket",
                 "vllm:inter_token_latency_seconds_bucket", "vllm:e2e_request_latency_seconds_bucket",
                 "vllm:request_queue_time_seconds_bucket", "vllm:lora_requests_info", "loraserve:pages_adapter",
                 "loraserve:adapter_device_hits_total", "loraserve:adapter_load_latency_seconds_bucket"]:
        check(f"metric {name}", name in m, name)
    check("queue time observed", m.get("vllm:request_queue_time_seconds_count", 0) > 0, m)
    check("ttft observed", m.get("vllm:time_to_first_token_seconds_count", 0) > 0, m)
    check("lora info labels", re.search(r'vllm:lora_requests_info\{[^}]*max_lora="', text) is not None)


def run_node(s):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_client_test.mjs")
    env = dict(os.environ, NODE_PATH=NODE_MODULES, LS_BASE_URL=f"http://127.0.0.1:{s.port}/v1", LS_KEY=KEY)
    r = subprocess.run(["node", script], env=env, capture_output=True, text=True, timeout=300)
    print(r.stdout[-4000:], r.stderr[-4000:])
    check("openai Node client", r.returncode == 0, r.returncode)


def load_test(s, clients=1000):
    """1,000 concurrent streaming clients; zero errors; pages back to baseline."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    base, _ = s.metrics()

    async def one(i):
        r, w = await asyncio.open_connection("127.0.0.1", s.port)
        body = json.dumps({"model": ["demo", "pirate", "poet", "coder"][i % 4], "prompt": [1, 5 + i % 400, 7],
                           "max_tokens": 4, "stream": True, "ignore_eos": True, "temperature": 0})
        w.write((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
        await w.drain()
        data = await r.read()
        w.close()
        head, _, _ = data.partition(b"\r\n\r\n")
        ok = head.startswith(b"HTTP/1.1 200") and data.count(b"data: [DONE]") == 1 and b'"error"' not in data
        return True if ok else data[:400]

    async def all_clients():
        return await asyncio.gather(*[one(i) for i in range(clients)], return_exceptions=True)

    t0 = time.time()
    results = asyncio.run(all_clients())
    dt = time.time() - t0
    errors = [repr(r) for r in results if r is not True]
    print(f"load test: {clients} concurrent streaming clients in {dt:.1f} s, {len(errors)} errors")
    check("1000 streams, zero errors", not errors, errors[:5])
    check("pages back to baseline", s.wait_metric("loraserve:pages_kv", base.get("loraserve:pages_kv", 0), 10)
          and s.wait_metric("vllm:num_requests_running", 0.0, 10))


def drain_test(s):
    """SIGTERM: the in-flight request finishes, then the process exits 0."""
    result = {}

    def long_request():
        result["r"] = s.request("POST", "/v1/completions", {"prompt": "Once", "max_tokens": 200, "ignore_eos": True,
                                                            "temperature": 0})

    t = threading.Thread(target=long_request)
    t.start()
    deadline = time.time() + 5
    while time.time() < deadline and s.metrics()[0].get("vllm:num_requests_running", 0) < 1:
        time.sleep(0.01)
    code = s.stop(signal.SIGTERM)
    t.join(60)
    st, j, _, _ = result.get("r", (None, None, None, None))
    check("drain finishes in-flight", st == 200 and j["usage"]["completion_tokens"] == 200, (st, j))
    check("drain exit 0", code == 0, code)


def queue_full_test(model):
    s = Server("--model", model, "--max-queue", "1", "--max-num-seqs", "1")
    try:
        results = []

        def req():
            results.append(s.request("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 300, "ignore_eos": True},
                                     key=None))
        threads = [threading.Thread(target=req) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        full = [r for r in results if r[0] == 429]
        check("429 when the queue is full", len(full) >= 1 and error_shape(full[0][1]) and "Retry-After" in full[0][3],
              [r[0] for r in results])
        check("others succeed", sum(1 for r in results if r[0] == 200) >= 1)
    finally:
        check("exit 0 on SIGINT", s.stop(signal.SIGINT) == 0)


if __name__ == "__main__":
    sys.exit(main())
