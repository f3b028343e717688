/// Active health-check state of one backend: flips to healthy after `healthyThreshold` passing
/// checks in a row and to unhealthy after `unhealthyThreshold` failing ones. Starts unhealthy, so
/// nothing is routed to a backend before it has answered once.
package struct ActiveHealth: Sendable, Equatable {
    package let healthyThreshold: Int
    package let unhealthyThreshold: Int
    package private(set) var isHealthy: Bool
    private var passes = 0
    private var failures = 0
    private var hasFailed = false
    package private(set) var lastError: String?

    package init(healthyThreshold: Int, unhealthyThreshold: Int, initiallyHealthy: Bool = false) {
        self.healthyThreshold = healthyThreshold
        self.unhealthyThreshold = unhealthyThreshold
        isHealthy = initiallyHealthy
    }

    /// Not healthy yet, but no check has failed either: it is coming up (its first checks are
    /// still to pass), so requests may wait for it.
    package var isComingUp: Bool { !isHealthy && !hasFailed }

    /// Records a check result; returns true when the health flipped.
    @discardableResult
    package mutating func record(passed: Bool, error: String? = nil) -> Bool {
        lastError = passed ? nil : error
        if passed {
            passes += 1
            failures = 0
            if !isHealthy, passes >= healthyThreshold {
                isHealthy = true
                return true
            }
        } else {
            failures += 1
            hasFailed = true
            passes = 0
            if isHealthy, failures >= unhealthyThreshold {
                isHealthy = false
                return true
            }
        }
        return false
    }
}
