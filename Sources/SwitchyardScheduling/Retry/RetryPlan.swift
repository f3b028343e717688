/// Where one request goes next after an attempt failed, as a pure state machine: another replica
/// of its model, the same replicas again (once, after connection-level failures), a wait for a
/// short `Retry-After`, back into its lane (a connect timeout under load, a preemption), the next
/// fallback model, or nowhere. The router path asks it at every step and carries the step out;
/// the retry budget is asked by the caller whenever ``leased(replica:)`` names a reason.
///
/// Rules (the README's "Retries"): retries happen only for failures before any byte reached the
/// client (the exchange decides which those are); at most `maxAttempts` attempts per model, with
/// `backoff` between them; a `Retry-After` up to `maxRetryAfter` is waited for when every replica
/// was tried; going back to the lane is not a retry and spends no budget (connect-timeout
/// requeues at most `maxConnectRequeues` times).
package struct RetryPlan: Sendable {
    package struct Policy: Sendable {
        package var maxAttempts: Int
        package var backoff: Duration
        package var maxRetryAfter: Duration
        /// The request's model and its fallbacks.
        package var models: Int
        package var deadline: ContinuousClock.Instant
        package var maxConnectRequeues: Int

        package init(
            maxAttempts: Int, backoff: Duration, maxRetryAfter: Duration, models: Int, deadline: ContinuousClock.Instant,
            maxConnectRequeues: Int = 5
        ) {
            self.maxAttempts = maxAttempts
            self.backoff = backoff
            self.maxRetryAfter = maxRetryAfter
            self.models = models
            self.deadline = deadline
            self.maxConnectRequeues = maxConnectRequeues
        }
    }

    /// A failed attempt another replica may fix.
    package struct Failure: Sendable, Equatable {
        package var reason: String
        /// The backend's status (429, 503) when it answered; nil for connection-level failures.
        package var status: Int?
        package var retryAfter: Duration?
        /// A connect timeout under load: the request waits in its lane again (not a retry).
        package var requeue: Bool

        package init(reason: String, status: Int? = nil, retryAfter: Duration? = nil, requeue: Bool = false) {
            self.reason = reason
            self.status = status
            self.retryAfter = retryAfter
            self.requeue = requeue
        }
    }

    package enum Step: Sendable, Equatable {
        /// Ask model `model`'s pool for a slot on a replica not in `excluding`. `requeue`: the
        /// request goes back first in its lane (after a preemption or a connect timeout).
        case acquire(model: Int, excluding: Set<Int>, requeue: Bool)
        /// Wait until then, and ask again.
        case wait(until: ContinuousClock.Instant)
        /// Nothing more to try: see ``outcome``.
        case giveUp
    }

    /// Why the pool gave no slot.
    package enum Refusal: Sendable {
        /// No eligible replica left (every one tried, ejected or unhealthy).
        case noReplica
        /// The request waited in its lane past its deadline.
        case queueTimeout
    }

    /// How a request that got no answer ends.
    package enum Outcome: Sendable, Equatable {
        case queueTimeout
        /// The last failure was a 429/503: relay it, with its Retry-After.
        case overloaded(status: Int, retryAfter: Duration?)
        /// Every attempt failed at the connection level.
        case allFailed
        /// No attempt could be made.
        case noBackend
    }

    let policy: Policy
    package private(set) var model = 0
    package private(set) var tried: Set<Int> = []
    /// Attempts on this model so far (one that went back to the lane does not count).
    private var attemptsHere = 0
    /// Attempts in all (for `x-switchyard-attempts`).
    package private(set) var attempts = 0
    package private(set) var lastFailure: Failure?
    package private(set) var connectRequeues = 0
    package private(set) var preemptions = 0
    private var requeue = false
    private var reusedTried = false
    private var queueTimedOut = false
    private var backoffDone = false
    private var waitUntil: ContinuousClock.Instant?

    /// `prior`: the attempt the event-loop fast path already made on `replica`.
    package init(policy: Policy, prior: (replica: Int, failure: Failure)? = nil) {
        self.policy = policy
        guard let prior else { return }
        attempts = 1
        lastFailure = prior.failure
        if prior.failure.requeue {
            // A connect timeout under load: the request waits in its lane again.
            connectRequeues = 1
            requeue = true
        } else {
            tried = [prior.replica]
            attemptsHere = 1
        }
    }

    /// What to do next.
    package mutating func next(now: ContinuousClock.Instant) -> Step {
        if let until = waitUntil {
            waitUntil = nil
            return .wait(until: until)
        }
        while model < policy.models, !queueTimedOut {
            guard attemptsHere < policy.maxAttempts else {
                nextModel()
                continue
            }
            if attemptsHere > 0, !requeue, policy.backoff > .zero, !backoffDone {
                guard now + policy.backoff < policy.deadline else { return .giveUp }
                backoffDone = true
                return .wait(until: now + policy.backoff)
            }
            return .acquire(model: model, excluding: tried, requeue: requeue)
        }
        return .giveUp
    }

    /// The model's pool named no replica for this request.
    package mutating func refused(_ refusal: Refusal, now: ContinuousClock.Instant) {
        backoffDone = false
        switch refusal {
        case .queueTimeout:
            queueTimedOut = true
        case .noReplica:
            if let failure = lastFailure, failure.status == nil, !tried.isEmpty, !reusedTried {
                // A connection lost before the response (a pooled keep-alive connection the server
                // had just closed, say) never reached the server: the same replicas may be tried
                // once more, on fresh connections.
                reusedTried = true
                tried = []
            } else if let wait = lastFailure?.retryAfter, !tried.isEmpty, wait <= policy.maxRetryAfter, now + wait < policy.deadline {
                // Honour a short Retry-After by waiting for the same replicas.
                waitUntil = now + wait
                tried = []
                lastFailure?.retryAfter = nil
            } else {
                nextModel()
            }
        }
    }

    /// The retry budget reason this attempt spends, if it is a retry: every attempt after the
    /// first, in this pool or a fallback, but not a request going back to its lane.
    package var budgetReason: String? {
        guard attempts > 0, !requeue else { return nil }
        return attemptsHere == 0 ? "fallback" : lastFailure?.reason ?? "unknown"
    }

    /// The budget said no: nothing more is tried.
    package mutating func budgetDenied() {
        model = policy.models
    }

    /// A slot on `replica`: the attempt starts.
    package mutating func leased(replica: Int) {
        attemptsHere += 1
        requeue = false
        backoffDone = false
        attempts += 1
        tried.insert(replica)
    }

    /// The attempt on `replica` failed before any byte reached the client.
    package mutating func failed(_ failure: Failure, replica: Int) {
        lastFailure = failure
        if failure.requeue, connectRequeues < policy.maxConnectRequeues {
            connectRequeues += 1
            backToLane(replica)
        }
    }

    /// The pool took the slot back for a higher lane: first in line again, not a retry.
    package mutating func preempted(replica: Int) {
        preemptions += 1
        backToLane(replica)
    }

    /// The attempt on `replica` does not count: the request waits in its lane for any replica.
    private mutating func backToLane(_ replica: Int) {
        attemptsHere -= 1
        tried.remove(replica)
        requeue = true
    }

    /// A model of the chain that is not served here is skipped.
    package mutating func skipModel() {
        nextModel()
    }

    package var outcome: Outcome {
        if queueTimedOut { return .queueTimeout }
        if let failure = lastFailure, let status = failure.status { return .overloaded(status: status, retryAfter: failure.retryAfter) }
        return lastFailure == nil ? .noBackend : .allFailed
    }

    private mutating func nextModel() {
        model += 1
        tried = []
        attemptsHere = 0
        reusedTried = false
        backoffDone = false
        requeue = false
    }
}
