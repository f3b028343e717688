/// What a managed replica is doing, for `/admin/backends` and metrics.
public struct ReplicaStatus: Sendable, Equatable {
    public enum Phase: String, Sendable {
        case installing, starting, warming, ready, draining, stopped, backoff
    }

    public var name: String
    public var url: String
    public var phase: Phase = .starting
    public var pid: Int32?
    public var restarts = 0
    public var lastExit: String?
    /// Spawn → server answers its health check.
    public var loadSeconds: Double?
    /// Warmup requests, all of them.
    public var warmupSeconds: Double?
    /// Spawn → ready for traffic.
    public var readySeconds: Double?

    public init(name: String, url: String) {
        self.name = name
        self.url = url
    }
}

/// What the gateway's admin API may ask of a managed replica's supervisor.
public protocol ManagedReplicaControl: Sendable {
    var status: ReplicaStatus { get }
    /// Closes the gate, waits for `waitIdle`, restarts the process; returns once it is ready again
    /// (or `timeout` passed).
    func rollingRestart(waitIdle: @escaping @Sendable () async -> Void, timeout: Duration) async -> Bool
    /// Stops the process and keeps it stopped (after a drain).
    func pause() async
    /// Starts a paused replica again.
    func resume()
}
