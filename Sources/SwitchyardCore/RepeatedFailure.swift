import Synchronization

/// A failure that repeats every round (a store or database that is down) logged as a story, not
/// a line per round: the first failure, then at most one reminder per `interval` with how many
/// were not logged, then one line when it clears. The caller logs the ``Line`` it is given.
package final class RepeatedFailure: Sendable {
    package enum Line: Equatable, Sendable {
        /// The first failure after a success (or ever): log it in full.
        case first
        /// Still failing: `suppressed` failures since the last line, failing for `seconds`.
        case still(suppressed: Int, seconds: Double)
        /// It works again after `failures` failures over `seconds`.
        case recovered(failures: Int, seconds: Double)
    }

    struct State {
        var since: ContinuousClock.Instant?
        var lastLine: ContinuousClock.Instant?
        var failures = 0
        var suppressed = 0
    }

    package let interval: Duration
    private let state = Mutex(State())

    package init(interval: Duration = .seconds(30)) {
        self.interval = interval
    }

    /// A failure now: what to log, or nil to stay quiet.
    package func failed(at now: ContinuousClock.Instant = .now) -> Line? {
        state.withLock { s in
            s.failures += 1
            guard let since = s.since, let last = s.lastLine else {
                s.since = now
                s.lastLine = now
                return .first
            }
            guard now - last >= interval else {
                s.suppressed += 1
                return nil
            }
            defer {
                s.lastLine = now
                s.suppressed = 0
            }
            return .still(suppressed: s.suppressed, seconds: (now - since).seconds)
        }
    }

    /// A success now: `.recovered` when it ends a run of failures, else nil.
    package func succeeded(at now: ContinuousClock.Instant = .now) -> Line? {
        state.withLock { s in
            guard let since = s.since else { return nil }
            defer { s = State() }
            return .recovered(failures: s.failures, seconds: (now - since).seconds)
        }
    }
}
