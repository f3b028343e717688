import SwitchyardCore

/// Where the concurrency limit in force for a backend came from.
package enum CapacitySource: String, Sendable, Equatable, CaseIterable {
    /// `max_inflight` in the configuration (or the slots of a managed llama.cpp): always wins.
    case config
    /// llama.cpp `GET /props` → `total_slots`.
    case props
    /// SGLang `GET /get_server_info` → `max_running_requests`.
    case serverInfo = "server_info"
    /// TGI `GET /info` → `max_concurrent_requests`.
    case info
    /// Learned from the engine's own waiting queue in its `/metrics` (vLLM and others).
    case learned
    /// Neither an info endpoint nor a waiting-queue metric: `upstream.default_max_inflight`,
    /// shrunk by connect timeouts under load.
    case `default`
    /// Discovery has not answered yet: a small provisional window.
    case pending

    /// The engine its answer identifies (each info endpoint is one engine's), when it does.
    package var engine: String? {
        switch self {
        case .props: "llama.cpp"
        case .serverInfo: "SGLang"
        case .info: "TGI"
        case .config, .learned, .default, .pending: nil
        }
    }
}

/// What an engine's info endpoint says about how much it runs at once.
package struct EngineCapacity: Sendable, Equatable {
    /// Requests the engine runs at once.
    package var slots: Int
    /// Tokens it holds at once, when it says (llama.cpp: context per slot × slots; SGLang
    /// `max_total_num_tokens`; TGI `max_batch_total_tokens` or `max_total_tokens`).
    package var tokens: Int?
    package var source: CapacitySource

    package init(slots: Int, tokens: Int? = nil, source: CapacitySource) {
        self.slots = slots
        self.tokens = tokens
        self.source = source
    }

    /// The endpoints tried in order, each with its parser. One GET each; a 404 moves on.
    package static let endpoints: [(path: String, source: CapacitySource)] = [
        ("/props", .props), ("/get_server_info", .serverInfo), ("/info", .info),
    ]

    /// Why an answer gave no capacity: shown in the log, and discovery goes on to the next
    /// endpoint or to learning.
    package struct Unusable: Error, Sendable, Equatable, CustomStringConvertible {
        package var reason: String
        package var description: String { reason }
        package init(_ reason: String) { self.reason = reason }
    }

    /// Reads the body of the endpoint for `source`.
    package static func parse(_ body: some Collection<UInt8>, source: CapacitySource) -> Result<EngineCapacity, Unusable> {
        let json: JSONValue
        do {
            json = try JSONParser.parse(body)
        } catch {
            return .failure(Unusable("not JSON (\(error))"))
        }
        guard json.isObject else { return .failure(Unusable("not a JSON object")) }
        switch source {
        case .props: return props(json)
        case .serverInfo: return serverInfo(json)
        case .info: return info(json)
        default: return .failure(Unusable("no parser for \(source.rawValue)"))
        }
    }

    static func positive(_ value: JSONValue?, _ field: String) -> Result<Int, Unusable>? {
        guard let value, value != .null else { return nil }
        guard let n = value.intValue else {
            return .failure(Unusable("\(field) is not a whole number: \(String(decoding: value.serialized(), as: UTF8.self))"))
        }
        guard n > 0 else { return .failure(Unusable("\(field) is \(n)")) }
        return .success(n)
    }

    /// llama.cpp: `{"total_slots": 4, "default_generation_settings": {"n_ctx": 1024, …}, …}`.
    static func props(_ json: JSONValue) -> Result<EngineCapacity, Unusable> {
        switch positive(json["total_slots"], "total_slots") {
        case .none: return .failure(Unusable("no total_slots"))
        case .failure(let e): return .failure(e)
        case .success(let slots):
            let perSlot = json["default_generation_settings"]?["n_ctx"]?.intValue ?? json["n_ctx"]?.intValue
            return .success(EngineCapacity(slots: slots, tokens: perSlot.flatMap { $0 > 0 ? $0 * slots : nil }, source: .props))
        }
    }

    /// SGLang: the server arguments (`max_running_requests`, null when automatic) and
    /// `internal_states` (the value the scheduler settled on, and `max_total_num_tokens`).
    static func serverInfo(_ json: JSONValue) -> Result<EngineCapacity, Unusable> {
        let states = json["internal_states"]?.arrayValue ?? []
        let candidates = [json["max_running_requests"]] + states.map { $0["max_running_requests"] }
        let tokens = (states.compactMap { $0["max_total_num_tokens"]?.intValue } + [json["max_total_num_tokens"]?.intValue].compactMap { $0 }).first
        for candidate in candidates {
            switch positive(candidate, "max_running_requests") {
            case .none: continue
            case .failure(let e): return .failure(e)
            case .success(let slots): return .success(EngineCapacity(slots: slots, tokens: tokens, source: .serverInfo))
            }
        }
        return .failure(Unusable("max_running_requests is not set (automatic)"))
    }

    /// TGI: `{"max_concurrent_requests": 128, "max_total_tokens": 2048, "max_batch_total_tokens": …}`.
    static func info(_ json: JSONValue) -> Result<EngineCapacity, Unusable> {
        switch positive(json["max_concurrent_requests"], "max_concurrent_requests") {
        case .none: return .failure(Unusable("no max_concurrent_requests"))
        case .failure(let e): return .failure(e)
        case .success(let slots):
            let tokens = json["max_batch_total_tokens"]?.intValue ?? json["max_total_tokens"]?.intValue
            return .success(EngineCapacity(slots: slots, tokens: tokens, source: .info))
        }
    }
}
