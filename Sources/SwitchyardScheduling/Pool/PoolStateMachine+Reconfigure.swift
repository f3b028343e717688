import SwitchyardCore

/// A configuration reload, applied to the pool in one step.
extension PoolStateMachine {
    /// What a reload did to the pool's replicas.
    package struct Reconfigured: Sendable, Equatable {
        /// New backends, and backends whose `max_inflight` changed: their capacity is discovered
        /// again; new ones take traffic once their first health check passes.
        package var discover: [Int] = []
        /// Backends left out of the new configuration: closed now, removed once idle (at once
        /// when nothing is in flight on them).
        package var retiring: [Int] = []
    }

    /// Applies a reloaded model section, lanes and tenant weights.
    ///
    /// Queued requests stay queued under the new lane policies; requests in flight keep their
    /// slots and finish where they are. Backends are matched by URL among those the
    /// configuration lists (managed and registered ones are left alone): settings of one kept
    /// change in place; a new one waits for its first health check (with active checks on);
    /// a removed one is closed at once and leaves the pool when its last request ends.
    package mutating func reconfigure(
        model: ModelConfig, lanes newLanes: [LaneConfig], tenantWeights: [String: Double], now: Duration
    )
        -> Reconfigured
    {
        var result = Reconfigured()
        let names = Set(newLanes.map(\.name))
        var merged = Dictionary(newLanes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // A lane dropped from the configuration keeps its policy for what it still holds.
        for (name, lane) in lanes where !names.contains(name) { merged[name] = lane }
        lanes = merged
        urgentLanes = Self.urgent(newLanes)
        scheduler = scheduler.reconfigured(lanes: newLanes.map(Self.schedulerLane), tenantWeights: tenantWeights)
        config = model

        let configured = model.backends.filter { !$0.managed }
        let wanted = Set(configured.map { Backend(config: $0, publicModel: model.name).id })
        for i in replicas.indices where Self.isStatic(replicas[i]) && !wanted.contains(replicas[i].backend.id) {
            replicas[i].retiring = true
            replicas[i].gateOpen = false
            // Idle: gone at once; else when its last request ends (``release``).
            if replicas[i].inflight == 0 { replicas[i].removed = true }
            result.retiring.append(i)
        }
        for backendConfig in configured {
            let backend = Backend(config: backendConfig, publicModel: model.name)
            if let i = replicas.indices.first(where: { Self.isStatic(replicas[$0]) && replicas[$0].backend.id == backend.id }) {
                let capacityChanged = replicas[i].backend.maxInflight != backend.maxInflight
                replicas[i].backend = backend
                if capacityChanged {
                    let fresh = makeReplica(backend, now: now)
                    replicas[i].capacity = fresh.capacity
                    replicas[i].window = fresh.window
                    result.discover.append(i)
                }
            } else {
                replicas.append(makeReplica(backend, now: now))
                result.discover.append(replicas.count - 1)
            }
        }
        dispatch(now: now)
        return result
    }

    /// Listed in the configuration: neither managed, registered, removed nor on its way out.
    static func isStatic(_ r: Replica) -> Bool {
        !r.removed && !r.retiring && r.expiresAt == nil && !r.backend.managed
    }
}
