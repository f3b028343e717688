extension LaneScheduler {
    /// The same queue under new lane policies and tenant weights (a configuration reload).
    ///
    /// Every queued request stays queued, in its tenant's order (delayed ones stay delayed);
    /// tenants keep their fairness counters in bands that still exist. A lane missing from
    /// `lanes` is kept as it was, so what it still holds is served and requests of it that are
    /// in flight complete against it; the gateway admits nothing new to it.
    package func reconfigured(lanes newLanes: [Lane], tenantWeights: [String: Double]) -> LaneScheduler {
        let names = Set(newLanes.map(\.name))
        let retired = self.lanes.values.filter { !names.contains($0.name) }.sorted { $0.name < $1.name }
        var next = LaneScheduler(lanes: newLanes + retired, tenantWeights: tenantWeights, prices: prices)
        // Counters first, so re-queued tenants are not lifted past what they had.
        for (position, band) in bands.enumerated() {
            guard let b = next.bandIndex[bandOrder[position]] else { continue }
            for (tenant, queue) in band.tenants {
                next.bands[b].tenants[tenant] = TenantQueue(counter: queue.counter)
            }
            next.bands[b].credit = band.credit
        }
        for band in bands {
            for queue in band.tenants.values {
                for request in queue.queue { next.requeue(request) }
            }
            for request in band.delayed { next.requeue(request) }
        }
        // Every backlogged tenant into its band's heap at its own counter (no lift: the
        // requests were queued all along).
        for b in next.bands.indices {
            for (tenant, queue) in next.bands[b].tenants where !queue.queue.isEmpty {
                next.bands[b].tenants[tenant]!.version += 1
                next.bands[b].heap.insert(HeapEntry(counter: queue.counter, tenant: tenant, version: queue.version + 1))
            }
        }
        return next
    }

    /// Puts a request taken from another scheduler into its lane's band, past admission checks.
    private mutating func requeue(_ request: Request) {
        guard let lane = lanes[request.lane], let b = bandIndex[lane.band] else { return }
        if request.delayed {
            bands[b].delayed.append(request)
            bands[b].count += 1
            bands[b].queuedTokens += request.inputTokens
        } else {
            bands[b].tenants[request.tenant, default: TenantQueue()].queue.append(request)
            bands[b].count += 1
            bands[b].queuedTokens += request.inputTokens
            noteDeadline(request.deadline)
        }
        laneCounts[request.lane, default: 0] += 1
    }
}
