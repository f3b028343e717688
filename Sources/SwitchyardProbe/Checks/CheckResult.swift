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

    /// JSON: the hint is `fix` (reports written before it was renamed say `hint`).
    enum CodingKeys: String, CodingKey { case id, status, subject, message, evidence, fix, hint }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        status = try c.decode(CheckStatus.self, forKey: .status)
        subject = try c.decode(String.self, forKey: .subject)
        message = try c.decode(String.self, forKey: .message)
        evidence = try c.decodeIfPresent([Evidence].self, forKey: .evidence) ?? []
        hint = try c.decodeIfPresent(String.self, forKey: .fix) ?? c.decodeIfPresent(String.self, forKey: .hint)
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(status, forKey: .status)
        try c.encode(subject, forKey: .subject)
        try c.encode(message, forKey: .message)
        try c.encode(evidence, forKey: .evidence)
        try c.encodeIfPresent(hint, forKey: .fix)
    }
}
