/// Active health-check state of one backend: flips to healthy after `healthyThreshold` passing
/// checks in a row and to unhealthy after `unhealthyThreshold` failing ones. Starts unhealthy, so
/// nothing is routed to a backend before it has answered once.
public struct ActiveHealth: Sendable, Equatable {
    public let healthyThreshold: Int
    public let unhealthyThreshold: Int
    public private(set) var isHealthy: Bool
    private var passes = 0
    private var failures = 0
    public private(set) var lastError: String?

    public init(healthyThreshold: Int, unhealthyThreshold: Int, initiallyHealthy: Bool = false) {
        self.healthyThreshold = healthyThreshold
        self.unhealthyThreshold = unhealthyThreshold
        isHealthy = initiallyHealthy
    }

    /// Records a check result; returns true when the health flipped.
    @discardableResult
    public mutating func record(passed: Bool, error: String? = nil) -> Bool {
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
            passes = 0
            if isHealthy, failures >= unhealthyThreshold {
                isHealthy = false
                return true
            }
        }
        return false
    }
}
