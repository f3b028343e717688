"""Drive a Switchyard gateway with the official `openai` Python client.

Usage: openai_compat_check.py BASE_URL MODEL
Checks chat (plain and streaming, with usage), completions (plain and streaming), embeddings and
models.list; prints one line per check and exits non-zero on the first failure.
"""
import sys

import openai

base, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=60)


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name} {detail}", flush=True)


models = [m.id for m in client.models.list()]
check("models.list", model in models, str(models))

chat = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
)
check("chat", chat.model == model and chat.choices[0].message.content, repr(chat.choices[0].message.content))
check("chat usage", chat.usage is not None and chat.usage.completion_tokens > 0, str(chat.usage))

stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Count to three."}],
    max_tokens=8,
    stream=True,
    stream_options={"include_usage": True},
)
pieces, usage, models_seen = [], None, set()
for chunk in stream:
    models_seen.add(chunk.model)
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
check("chat stream", len(pieces) > 0 and models_seen == {model}, repr("".join(pieces)))
check("chat stream usage", usage is not None and usage.completion_tokens >= len(pieces) - 1, str(usage))

plain_stream = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True
)
chunks = list(plain_stream)
check("chat stream without usage", all(c.usage is None for c in chunks), f"{len(chunks)} chunks")

completion = client.completions.create(model=model, prompt="The capital of France is", max_tokens=6)
check("completions", completion.model == model and completion.choices[0].text is not None, repr(completion.choices[0].text))

text = "".join(c.choices[0].text for c in client.completions.create(model=model, prompt="Once upon a time", max_tokens=6, stream=True) if c.choices)
check("completions stream", len(text) > 0, repr(text))

emb = client.embeddings.create(model=model, input=["hello world", "goodbye"])
check("embeddings", len(emb.data) == 2 and len(emb.data[0].embedding) > 0, f"dim={len(emb.data[0].embedding)}")

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    check("unknown model", False, "no error raised")
except openai.NotFoundError as e:
    check("unknown model", e.code == "model_not_found", str(e.code))

print("all checks passed")
