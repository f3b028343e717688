import SwitchyardCore

/// What happens to a batch next, and to an item after an attempt: pure decisions, tested without
/// a store. The worker carries them out.
package enum BatchLifecycle {
    package enum Step: Sendable, Equatable {
        /// validating → in_progress (its items exist from creation).
        case start
        /// Every item answered: write the output and error files → completed.
        case finalize
        /// The completion window passed: unfinished items fail with `batch_expired` → expired.
        case expire
        /// Cancelling with nothing in flight any more → cancelled (finished items kept).
        case finishCancel
        case wait
    }

    package static func step(_ status: BatchStatus, counts: ItemCounts, now: Int, expiresAt: Int) -> Step {
        switch status {
        case .validating: return .start
        case .inProgress, .finalizing:
            if counts.open == 0 { return .finalize }
            return now >= expiresAt ? .expire : .wait
        case .cancelling: return counts.claimed == 0 ? .finishCancel : .wait
        case .failed, .completed, .expired, .cancelled: return .wait
        }
    }

    package enum ItemOutcome: Sendable, Equatable {
        /// A 200: a line of the output file.
        case done
        /// An answer that is final although not a success (a 4xx, or attempts used up): a
        /// line of the error file with the response.
        case failed
        /// Try again after this long (a 429, a 5xx, no answer at all).
        case retry(after: Duration)
    }

    /// An attempt's outcome: `status` nil when no HTTP answer came. `attempts` counts this one.
    package static func outcome(status: Int?, attempts: Int, maxAttempts: Int, backoff: Duration) -> ItemOutcome {
        if status == 200 { return .done }
        let retryable = status == nil || status == 408 || status == 429 || (status ?? 0) >= 500
        guard retryable, attempts < maxAttempts else { return .failed }
        // Exponential from the lane's backoff (at least 500 ms), capped at 30 s.
        let base = max(backoff, .milliseconds(500))
        let factor = 1 << min(attempts - 1, 6)
        return .retry(after: min(base * factor, .seconds(30)))
    }

    /// `24h`, `1h`, `30m`, `3600s`… → seconds; OpenAI only takes `24h`, Switchyard any window
    /// up to 7 days.
    package static func windowSeconds(_ text: String) -> Int? {
        guard let d = Duration.parse(text), d >= .seconds(1), d <= .seconds(7 * 86400) else { return nil }
        return Int(d.components.seconds)
    }
}

/// Output and error file lines in OpenAI's batch output format.
package enum BatchOutput {
    package static func line(customID: String, status: Int, requestID: String, body: JSONValue) -> String {
        String(
            decoding: JSONValue.object([
                ("id", .string("batch_req_" + BatchIDs.random(24))), ("custom_id", .string(customID)),
                ("response", .object([("status_code", .number(status)), ("request_id", .string(requestID)), ("body", body)])),
                ("error", .null),
            ]).serialized(), as: UTF8.self)
    }

    package static func errorLine(customID: String, code: String, message: String) -> String {
        String(
            decoding: JSONValue.object([
                ("id", .string("batch_req_" + BatchIDs.random(24))), ("custom_id", .string(customID)), ("response", .null),
                ("error", .object([("code", .string(code)), ("message", .string(message))])),
            ]).serialized(), as: UTF8.self)
    }
}

/// Random ids in OpenAI's style (`file-…`, `batch_…`).
package enum BatchIDs {
    private static let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)

    package static func random(_ count: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        return String(decoding: (0..<count).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }, as: UTF8.self)
    }
}

/// The progress line of `switchyard batch submit --wait`.
package enum BatchProgress {
    package static func line(status: String, done: Int, failed: Int, total: Int, elapsed: Double) -> String {
        let finished = done + failed
        let width = 24
        let filled = total > 0 ? min(width, finished * width / total) : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let rate = elapsed > 0 ? Double(finished) / elapsed : 0
        var eta = "–"
        if rate > 0, finished < total { eta = "\(Int((Double(total - finished) / rate).rounded(.up)))s" }
        return String(format: "[%@] %d/%d done, %d failed · %.1f items/s · ETA %@ · %@", bar, finished, total, failed, rate, eta, status)
    }
}
