import Yams

extension JSONValue {
    /// A YAML document as JSON: mappings keep their order, scalars take YAML's core-schema
    /// types (null, bool, int, float, else string; a quoted scalar is always a string).
    package init(yaml: String) throws {
        guard let node = try Yams.compose(yaml: yaml) else {
            self = .null
            return
        }
        self = Self(node)
    }

    private init(_ node: Node) {
        switch node {
        case .mapping(let mapping): self = .object(mapping.map { ($0.key.string ?? "", JSONValue($0.value)) })
        case .sequence(let sequence): self = .array(sequence.map { JSONValue($0) })
        case .scalar(let scalar):
            if scalar.style != .plain {
                self = .string(scalar.string)
            } else if scalar.string == "null" || scalar.string == "~" {
                self = .null
            } else if let b = Bool.construct(from: scalar) {
                self = .bool(b)
            } else if let i = Int.construct(from: scalar) {
                self = .number(String(i))
            } else if scalar.string.first.map({ $0.isNumber || $0 == "-" }) == true, let d = Double.construct(from: scalar), d.isFinite {
                self = .number(String(d))
            } else {
                self = .string(scalar.string)
            }
        case .alias: self = .null
        }
    }
}
