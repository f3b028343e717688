import Foundation

extension Duration {
    /// Parses `250ms`, `1.5s`, `2m`, `1h`, `100us` or a bare number of seconds.
    package static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count)) else { return nil }
            return nanoseconds(value * scale * 1e9)
        }
        return Double(trimmed).flatMap { nanoseconds($0 * 1e9) }
    }

    /// Nil for what no duration is: negative, not finite, or past ~292 years (Int64 nanoseconds;
    /// found by the FuzzConfig target, where `total: 99999…s` trapped).
    private static func nanoseconds(_ value: Double) -> Duration? {
        guard value >= 0, value.isFinite, value.rounded() < 9.2e18 else { return nil }
        return .nanoseconds(Int64(value.rounded()))
    }

    /// Seconds as a Double, for metrics and arithmetic.
    package var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }

    /// Human form used in `config check` output: `250ms`, `2s`, `1.5s`.
    package var formatted: String {
        let s = seconds
        if s == 0 { return "0s" }
        if s < 1 { return "\(Self.trim(s * 1000))ms" }
        if s >= 3600, s.truncatingRemainder(dividingBy: 3600) == 0 { return "\(Int(s / 3600))h" }
        if s >= 60, s.truncatingRemainder(dividingBy: 60) == 0 { return "\(Int(s / 60))m" }
        return "\(Self.trim(s))s"
    }

    static func trim(_ value: Double) -> String {
        value.rounded() == value ? String(Int(value)) : String(format: "%.3g", value)
    }
}
