"""A fixed OpenAI-compatible upstream for API fuzzing (scripts/schemathesis.sh): every chat,
completion or embeddings request gets the same small answer (SSE when "stream" is true), so
whatever the gateway does with a request is what is tested. Loopback only.

Usage: fixed_upstream.py PORTFILE  (binds 127.0.0.1:0 and writes the port to PORTFILE)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHAT = {"id": "chatcmpl-fixed", "object": "chat.completion", "created": 0, "model": "fixed",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
TEXT = {"id": "cmpl-fixed", "object": "text_completion", "created": 0, "model": "fixed",
        "choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
EMBED = {"object": "list", "model": "fixed", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
         "usage": {"prompt_tokens": 1, "total_tokens": 1}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, kind="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.endswith("/models"):
            self.send(200, {"object": "list", "data": [{"id": "fixed", "object": "model", "owned_by": "test"}]})
        else:
            self.send(200, {"status": "ok"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            request = json.loads(body)
        except ValueError:
            request = {}
        stream = isinstance(request, dict) and request.get("stream") is True
        if self.path.endswith("/embeddings"):
            return self.send(200, EMBED)
        answer = CHAT if self.path.endswith("/chat/completions") else TEXT
        if not stream:
            return self.send(200, answer)
        chunk = dict(answer, object=answer["object"] + ".chunk")
        chunk["choices"] = [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}] if answer is CHAT else answer["choices"]
        events = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        self.send(200, events, "text/event-stream")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
