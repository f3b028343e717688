import SwitchyardCore

/// A configuration reload, applied to the pool in one step.
extension PoolStateMachine {
    /// What a reload did to the pool's replicas.
    package struct Reconfigured: Sendable, Equatable {
        /// New backends, and backends whose `max_inflight` changed: their capacity is discovered
        /// again. New ones start closed: the gateway opens them once it has checked their health
        /// and asked their capacity (``setGate(_:open:now:)``).
        package var discover: [Int] = []
        /// The new ones among them (closed until opened).
        package var added: [Int] = []
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
        let names = Set(newLanes.map(\.name))
        var merged = Dictionary(newLanes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // A lane dropped from the configuration keeps its policy for what it still holds.
        for (name, lane) in lanes where !names.contains(name) { merged[name] = lane }
        lanes = merged
        urgentLanes = Self.urgent(newLanes)
        scheduler = scheduler.reconfigured(lanes: newLanes.map(Self.schedulerLane), tenantWeights: tenantWeights)
        config = model

        let result = sync(model.backends.filter { !$0.managed }, among: Self.isStatic, now: now)
        dispatch(now: now)
        return result
    }

    /// The backends `source` (DNS, EndpointSlices) finds now: new ones join once their first
    /// health check passes, missing ones are drained, kept ones change in place.
    package mutating func syncDiscovered(source: String, backends: [BackendConfig], now: Duration) -> Reconfigured {
        let result = sync(backends, among: { !$0.removed && !$0.retiring && $0.discoveredBy == source }, tag: source, now: now)
        dispatch(now: now)
        return result
    }

    /// Makes the replicas `among` selects match `wanted`, by backend URL.
    private mutating func sync(_ wanted: [BackendConfig], among: (Replica) -> Bool, tag: String? = nil, now: Duration) -> Reconfigured {
        var result = Reconfigured()
        let publicModel = config.name
        let ids = Set(wanted.map { Backend(config: $0, publicModel: publicModel).id })
        for i in replicas.indices where among(replicas[i]) && !ids.contains(replicas[i].backend.id) {
            replicas[i].retiring = true
            replicas[i].gateOpen = false
            // Idle: gone at once; else when its last request ends (``release``).
            if replicas[i].inflight == 0 { replicas[i].removed = true }
            result.retiring.append(i)
        }
        for backendConfig in wanted {
            let backend = Backend(config: backendConfig, publicModel: publicModel)
            if let i = replicas.indices.first(where: { among(replicas[$0]) && replicas[$0].backend.id == backend.id }) {
                let capacityChanged = replicas[i].backend.maxInflight != backend.maxInflight
                replicas[i].backend = backend
                // Its weight may have changed: the load index orders by it.
                loadIndex.invalidate()
                if capacityChanged {
                    let fresh = makeReplica(backend, now: now)
                    replicas[i].capacity = fresh.capacity
                    replicas[i].window = fresh.window
                    result.discover.append(i)
                }
            } else {
                var r = makeReplica(backend, now: now)
                r.discoveredBy = tag
                // Closed until the gateway has checked its health and asked its capacity;
                // requests wait for it meanwhile.
                r.gateOpen = false
                r.admitting = true
                replicas.append(r)
                result.discover.append(replicas.count - 1)
                result.added.append(replicas.count - 1)
            }
        }
        return result
    }

    /// Listed in the configuration: neither managed, registered, discovered, removed nor on its
    /// way out.
    static func isStatic(_ r: Replica) -> Bool {
        !r.removed && !r.retiring && r.expiresAt == nil && !r.backend.managed && r.discoveredBy == nil
    }
}
