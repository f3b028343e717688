public enum CheckStatus: String, Sendable, Codable, Comparable {
    case pass, warn, fail

    public static func < (a: CheckStatus, b: CheckStatus) -> Bool {
        let order: [CheckStatus] = [.pass, .warn, .fail]
        return order.firstIndex(of: a)! < order.firstIndex(of: b)!
    }
}

/// A value read, and where from: the proof behind a verdict.
public struct Evidence: Sendable, Equatable, Codable {
    public var source: String
    public var value: String

    public init(_ source: String, _ value: String) {
        self.source = source
        self.value = value
    }
}

/// One verdict of one check on one subject (PCI address, interface, RDMA port, host).
public struct CheckResult: Sendable, Equatable, Codable {
    public var id: String
    public var status: CheckStatus
    public var subject: String
    public var message: String
    public var evidence: [Evidence]
    public var hint: String?

    public init(id: String, status: CheckStatus, subject: String, message: String, evidence: [Evidence] = [], hint: String? = nil) {
        self.id = id
        self.status = status
        self.subject = subject
        self.message = message
        self.evidence = evidence
        self.hint = hint
    }
}
