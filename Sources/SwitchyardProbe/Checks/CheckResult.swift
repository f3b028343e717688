package enum CheckStatus: String, Sendable, Codable, Comparable {
    case pass, warn, fail

    package static func < (a: CheckStatus, b: CheckStatus) -> Bool {
        let order: [CheckStatus] = [.pass, .warn, .fail]
        return order.firstIndex(of: a)! < order.firstIndex(of: b)!
    }
}

/// A value read, and where from: the proof behind a verdict.
package struct Evidence: Sendable, Equatable, Codable {
    package var source: String
    package var value: String

    package init(_ source: String, _ value: String) {
        self.source = source
        self.value = value
    }
}

/// One verdict of one check on one subject (PCI address, interface, RDMA port, host).
package struct CheckResult: Sendable, Equatable, Codable {
    package var id: String
    package var status: CheckStatus
    package var subject: String
    package var message: String
    package var evidence: [Evidence]
    package var hint: String?

    package init(id: String, status: CheckStatus, subject: String, message: String, evidence: [Evidence] = [], hint: String? = nil) {
        self.id = id
        self.status = status
        self.subject = subject
        self.message = message
        self.evidence = evidence
        self.hint = hint
    }
}
