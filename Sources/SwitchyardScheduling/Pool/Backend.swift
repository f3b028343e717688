import SwitchyardCore

/// One replica of a model pool: where it is and how much it may take. Mutable health and load
/// live in ``PoolStateMachine`` so one snapshot covers the whole pool.
package struct Backend: Sendable {
    /// Label used in metrics and logs: the OpenAI base URL.
    package let id: String
    package let url: HTTPURL
    package let upstreamModel: String
    package let weight: Double
    /// Configured limit on requests in flight (0 = unlimited); nil: discovered or learned.
    package let maxInflight: Int?
    package let managed: Bool
    /// The `Host` header for requests to it.
    package let hostHeader: String

    package init(config: BackendConfig, publicModel: String) {
        url = HTTPURL(config.url)!
        id = url.description
        upstreamModel = config.upstreamModel ?? publicModel
        weight = config.weight
        maxInflight = config.maxInflight
        managed = config.managed
        hostHeader = url.host.utf8.contains(UInt8(ascii: ":")) ? "[\(url.host)]:\(url.port)" : "\(url.host):\(url.port)"
    }
}

/// What became of an attempt on a backend, for passive health.
package enum AttemptOutcome: Sendable {
    case success
    /// Counted against the backend's outlier detector.
    case failure
    /// Says nothing about the backend (client went away, client error).
    case neutral
}
