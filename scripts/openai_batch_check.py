"""Drive Switchyard's Files and Batches APIs with the official `openai` Python client.

Usage: openai_batch_check.py BASE_URL MODEL
Uploads a batch file, creates a batch, polls it to `completed` and reads its output (one line per
input line, matching custom_ids); cancels a second batch; checks that a malformed file is refused
with its line numbers and that batches.list paginates. One line per check; non-zero on failure.
"""
import json
import sys
import tempfile
import time

import openai

base, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=60)


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name} {detail}", flush=True)


def jsonl(n, prefix):
    f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
    for i in range(n):
        f.write(json.dumps({
            "custom_id": f"{prefix}-{i}", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"Count to {i + 1}."}], "max_tokens": 6, "temperature": 0},
        }) + "\n")
    f.close()
    return f.name


def wait(batch_id, statuses, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        b = client.batches.retrieve(batch_id)
        if b.status in statuses:
            return b
        time.sleep(0.5)
    check(f"batch {batch_id} reaches {statuses}", False, b.status)


with open(jsonl(6, "req"), "rb") as fh:
    uploaded = client.files.create(file=fh, purpose="batch")
check("files.create", uploaded.id.startswith("file-") and uploaded.purpose == "batch" and uploaded.bytes > 0, uploaded.id)
check("files.retrieve", client.files.retrieve(uploaded.id).filename.endswith(".jsonl"))

batch = client.batches.create(
    input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"job": "openai-check"}
)
check("batches.create", batch.status == "validating" and batch.request_counts.total == 6, batch.status)
done = wait(batch.id, {"completed", "failed", "expired", "cancelled"})
check("batch completed", done.status == "completed", f"{done.status} {done.request_counts}")
check("request_counts", done.request_counts.completed == 6 and done.request_counts.failed == 0, str(done.request_counts))
check("timestamps", all([done.created_at, done.in_progress_at, done.finalizing_at, done.completed_at, done.expires_at]))
check("metadata", done.metadata == {"job": "openai-check"}, str(done.metadata))

lines = [json.loads(l) for l in client.files.content(done.output_file_id).text.splitlines() if l.strip()]
check("one output line per input line", sorted(l["custom_id"] for l in lines) == sorted(f"req-{i}" for i in range(6)), str(len(lines)))
check(
    "output lines carry the chat answers",
    all(l["response"]["status_code"] == 200 and l["response"]["body"]["choices"][0]["message"]["content"] for l in lines),
)
check("no error file", done.error_file_id is None)

with open(jsonl(40, "slow"), "rb") as fh:
    second = client.files.create(file=fh, purpose="batch")
to_cancel = client.batches.create(input_file_id=second.id, endpoint="/v1/chat/completions", completion_window="24h")
cancelling = client.batches.cancel(to_cancel.id)
check("batches.cancel", cancelling.status in ("cancelling", "cancelled"), cancelling.status)
cancelled = wait(to_cancel.id, {"cancelled"})
check("cancelled keeps what finished", cancelled.request_counts.completed < 40, str(cancelled.request_counts))

bad = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
bad.write(json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": model}}) + "\n")
bad.write("{not json\n")
bad.write(json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "nope"}}) + "\n")
bad.close()
try:
    with open(bad.name, "rb") as fh:
        client.files.create(file=fh, purpose="batch")
    check("malformed file refused", False, "accepted")
except openai.BadRequestError as e:
    message = str(e)
    check("malformed file refused with line numbers", "line 2" in message and "line 3" in message, message[:200])

page = client.batches.list(limit=1)
check("batches.list limit", len(page.data) == 1 and page.has_more, str(page.has_more))
ids = [b.id for b in client.batches.list(limit=1)]  # auto-pagination follows `after`
check("batches.list pagination", len(ids) >= 2 and len(set(ids)) == len(ids) and batch.id in ids, str(ids))
check("files.list", any(f.id == uploaded.id for f in client.files.list()))
check("files.delete", client.files.delete(second.id).deleted)
print("all checks passed", flush=True)
