#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The DNS wire format (RFC 1035, SRV from RFC 2782, AAAA from RFC 3596): queries, and the
/// answers discovery needs. Pure: bytes in, values out.
package enum DNSMessage {
    package enum RecordType: UInt16, Sendable {
        case a = 1
        case cname = 5
        case aaaa = 28
        case srv = 33
    }

    package enum RecordData: Sendable, Equatable {
        case address(String)
        case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
        case cname(String)
        case other(UInt16)
    }

    package struct Record: Sendable, Equatable {
        package var name: String
        package var ttl: UInt32
        package var data: RecordData
        package init(name: String, ttl: UInt32, data: RecordData) {
            self.name = name
            self.ttl = ttl
            self.data = data
        }
    }

    package struct Response: Sendable, Equatable {
        package var id: UInt16
        /// 0 no error, 2 server failure, 3 name does not exist.
        package var rcode: UInt8
        package var truncated: Bool
        package var answers: [Record]
        package var additional: [Record]
    }

    package struct ParseError: Error, Sendable, CustomStringConvertible {
        package var description: String
    }

    /// A recursive query for one name and type.
    package static func query(id: UInt16, name: String, type: RecordType) -> [UInt8] {
        var out: [UInt8] = []
        out.append(contentsOf: be16(id))
        out.append(contentsOf: be16(0x0100))  // recursion desired
        out.append(contentsOf: be16(1) + be16(0) + be16(0) + be16(0))
        out.append(contentsOf: encodeName(name))
        out.append(contentsOf: be16(type.rawValue) + be16(1))
        return out
    }

    /// An answer to `query` (what a test's DNS server sends).
    package static func response(to query: [UInt8], rcode: UInt8 = 0, answers: [Record], additional: [Record] = []) -> [UInt8]? {
        guard query.count >= 12, let (_, end) = try? readName(query, at: 12), end + 4 <= query.count else { return nil }
        var out = Array(query[0..<2])
        out.append(contentsOf: be16(0x8180 | UInt16(rcode)))
        out.append(contentsOf: be16(1) + be16(UInt16(answers.count)) + be16(0) + be16(UInt16(additional.count)))
        out.append(contentsOf: query[12..<(end + 4)])
        for record in answers + additional { out.append(contentsOf: encode(record)) }
        return out
    }

    /// The name and type a query asks for.
    package static func question(_ query: [UInt8]) -> (name: String, type: UInt16)? {
        guard query.count >= 12, let (name, end) = try? readName(query, at: 12), end + 4 <= query.count else { return nil }
        return (name, u16(query, end))
    }

    package static func parse(_ bytes: [UInt8]) throws(ParseError) -> Response {
        guard bytes.count >= 12 else { throw ParseError(description: "DNS message shorter than its header (\(bytes.count) bytes)") }
        let id = u16(bytes, 0)
        let flags = u16(bytes, 2)
        let (qd, an, ns, ar) = (Int(u16(bytes, 4)), Int(u16(bytes, 6)), Int(u16(bytes, 8)), Int(u16(bytes, 10)))
        var at = 12
        for _ in 0..<qd {
            at = try readName(bytes, at: at).end + 4
        }
        var answers: [Record] = []
        var additional: [Record] = []
        for section in 0..<3 {
            for _ in 0..<[an, ns, ar][section] {
                let (record, next) = try readRecord(bytes, at: at)
                at = next
                if section == 0 { answers.append(record) } else if section == 2 { additional.append(record) }
            }
        }
        return Response(id: id, rcode: UInt8(flags & 0x000F), truncated: flags & 0x0200 != 0, answers: answers, additional: additional)
    }

    // MARK: - Reading

    static func u16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }

    static func readRecord(_ b: [UInt8], at start: Int) throws(ParseError) -> (Record, Int) {
        let (name, at) = try readName(b, at: start)
        guard at + 10 <= b.count else { throw ParseError(description: "record of \(name) cut short") }
        let type = u16(b, at)
        let ttl = UInt32(u16(b, at + 4)) << 16 | UInt32(u16(b, at + 6))
        let length = Int(u16(b, at + 8))
        let data = at + 10
        guard data + length <= b.count else { throw ParseError(description: "record data of \(name) runs past the message") }
        let value: RecordData
        switch RecordType(rawValue: type) {
        case .a where length == 4:
            value = .address(b[data..<(data + 4)].map(String.init).joined(separator: "."))
        case .aaaa where length == 16:
            value = .address(ipv6(Array(b[data..<(data + 16)])))
        case .srv where length >= 7:
            let target = try readName(b, at: data + 6).name
            value = .srv(priority: u16(b, data), weight: u16(b, data + 2), port: u16(b, data + 4), target: target)
        case .cname:
            value = .cname(try readName(b, at: data).name)
        default:
            value = .other(type)
        }
        return (Record(name: name, ttl: ttl, data: value), data + length)
    }

    /// A name, following compression pointers (at most 32, so a loop cannot hang us).
    static func readName(_ b: [UInt8], at start: Int) throws(ParseError) -> (name: String, end: Int) {
        var labels: [String] = []
        var at = start
        var end: Int?
        var jumps = 0
        while true {
            guard at < b.count else { throw ParseError(description: "name runs past the message") }
            let length = Int(b[at])
            if length == 0 {
                return (labels.joined(separator: "."), end ?? at + 1)
            }
            if length & 0xC0 == 0xC0 {
                guard at + 1 < b.count, jumps < 32 else { throw ParseError(description: "bad compression pointer") }
                if end == nil { end = at + 2 }
                at = (length & 0x3F) << 8 | Int(b[at + 1])
                jumps += 1
                continue
            }
            guard length <= 63, at + 1 + length <= b.count else { throw ParseError(description: "label runs past the message") }
            labels.append(String(decoding: b[(at + 1)..<(at + 1 + length)], as: UTF8.self))
            at += 1 + length
        }
    }

    static func ipv6(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        return bytes.withUnsafeBytes { raw in
            guard inet_ntop(AF_INET6, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil else { return "::" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    // MARK: - Writing

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }

    static func encodeName(_ name: String) -> [UInt8] {
        var out: [UInt8] = []
        for label in name.split(separator: ".") where !label.isEmpty {
            let bytes = Array(label.utf8.prefix(63))
            out.append(UInt8(bytes.count))
            out.append(contentsOf: bytes)
        }
        out.append(0)
        return out
    }

    static func encode(_ record: Record) -> [UInt8] {
        var rdata: [UInt8]
        var type: UInt16
        switch record.data {
        case .address(let text) where text.contains(":"):
            type = RecordType.aaaa.rawValue
            var addr = in6_addr()
            _ = inet_pton(AF_INET6, text, &addr)
            rdata = withUnsafeBytes(of: &addr) { Array($0) }
        case .address(let text):
            type = RecordType.a.rawValue
            rdata = text.split(separator: ".").compactMap { UInt8($0) }
        case .srv(let priority, let weight, let port, let target):
            type = RecordType.srv.rawValue
            rdata = be16(priority) + be16(weight) + be16(port) + encodeName(target)
        case .cname(let target):
            type = RecordType.cname.rawValue
            rdata = encodeName(target)
        case .other(let t):
            type = t
            rdata = []
        }
        return encodeName(record.name) + be16(type) + be16(1) + be16(UInt16(record.ttl >> 16)) + be16(UInt16(record.ttl & 0xFFFF))
            + be16(UInt16(rdata.count)) + rdata
    }
}
