/// What a model server's own `/metrics` says about its load, from llama.cpp (`llamacpp:*`), vLLM
/// (`vllm:*`), SGLang (`sglang:*`) or TGI (`tgi_*`) names. Stale or missing data counts as saturated.
package struct BackendSignals: Sendable, Equatable {
    package var running: Double?
    package var waiting: Double?
    /// 0…1
    package var kvCacheUsage: Double?
    /// Cumulative counters, to be differenced between scrapes.
    package var deferredTotal: Double?
    package var preemptionsTotal: Double?
    package var scrapedAt: Duration

    package init(scrapedAt: Duration) {
        self.scrapedAt = scrapedAt
    }

    /// Parses Prometheus text exposition; unknown metrics are ignored, labels summed over.
    package static func parse(_ text: String, scrapedAt: Duration) -> BackendSignals {
        var s = BackendSignals(scrapedAt: scrapedAt)
        func add(_ value: Double, to field: inout Double?) { field = (field ?? 0) + value }
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count >= 2, let value = Double(parts[1]) else { continue }
            let name = parts[0].split(separator: "{").first.map(String.init) ?? ""
            switch name {
            case "llamacpp:requests_processing", "vllm:num_requests_running", "sglang:num_running_reqs", "tgi_batch_current_size":
                add(value, to: &s.running)
            case "llamacpp:requests_deferred", "vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size": add(value, to: &s.waiting)
            case "llamacpp:kv_cache_usage_ratio", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc":
                s.kvCacheUsage = max(s.kvCacheUsage ?? 0, value)
            case "llamacpp:n_requests_deferred_total": add(value, to: &s.deferredTotal)
            case "vllm:num_preemptions_total", "vllm:num_preemptions": add(value, to: &s.preemptionsTotal)
            default: break
            }
        }
        return s
    }

    /// Gateway API Inference Extension saturation: max(waiting/5, kv/0.8); ≥ 1 is saturated.
    /// Metrics older than `staleAfter` (or none) count as saturated.
    package func saturation(now: Duration, staleAfter: Duration) -> Double {
        guard now - scrapedAt <= staleAfter else { return .infinity }
        let queue = (waiting ?? 0) / 5
        let kv = (kvCacheUsage ?? 0) / 0.8
        return max(queue, kv)
    }

    /// Dispatch only under the KV-cache watermark and with fresh metrics.
    package func hasMemoryHeadroom(now: Duration, kvCacheMax: Double, staleAfter: Duration) -> Bool {
        guard now - scrapedAt <= staleAfter else { return false }
        return (kvCacheUsage ?? 0) < kvCacheMax
    }
}
