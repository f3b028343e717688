/// What a managed replica is doing, for `/admin/backends` and metrics.
package struct ReplicaStatus: Sendable, Equatable {
    package enum Phase: String, Sendable {
        case installing, starting, warming, ready, draining, stopped, backoff
    }

    package var name: String
    package var url: String
    package var phase: Phase = .starting
    package var pid: Int32?
    package var restarts = 0
    package var lastExit: String?
    /// Spawn → server answers its health check.
    package var loadSeconds: Double?
    /// Warmup requests, all of them.
    package var warmupSeconds: Double?
    /// Spawn → ready for traffic.
    package var readySeconds: Double?

    package init(name: String, url: String) {
        self.name = name
        self.url = url
    }
}

/// What the gateway's admin API may ask of a managed replica's supervisor.
package protocol ManagedReplicaControl: Sendable {
    var status: ReplicaStatus { get }
    /// Closes the gate, waits for `waitIdle`, restarts the process; returns once it is ready again
    /// (or `timeout` passed).
    func rollingRestart(waitIdle: @escaping @Sendable () async -> Void, timeout: Duration) async -> Bool
    /// Stops the process and keeps it stopped (after a drain).
    func pause() async
    /// Starts a paused replica again; false when it was not paused (its gate is the caller's).
    func resume() -> Bool
}
