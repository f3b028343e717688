import Foundation

/// The M/M/c queue in closed form (Erlang C): the reference the simulator is checked against.
package enum ErlangC {
    /// Probability that an arrival waits, with `servers` servers and offered load `a = λ/μ`
    /// erlangs (a < servers).
    package static func waitProbability(servers c: Int, offered a: Double) -> Double {
        precondition(c >= 1 && a >= 0 && a < Double(c), "Erlang C needs 0 ≤ a < c")
        // Σ_{k<c} a^k/k! and a^c/c!, term by term (no factorials to overflow).
        var term = 1.0
        var sum = 0.0
        for k in 0..<c {
            sum += term
            term *= a / Double(k + 1)
        }
        let top = term * Double(c) / (Double(c) - a)
        return top / (sum + top)
    }

    /// Mean time in the queue: C(c, a) ÷ (cμ − λ).
    package static func meanWait(servers c: Int, arrivalRate lambda: Double, serviceRate mu: Double) -> Double {
        waitProbability(servers: c, offered: lambda / mu) / (Double(c) * mu - lambda)
    }
}
