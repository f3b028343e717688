import Foundation
import NIOCore
import NIOPosix
import SwitchyardCore

/// `/etc/resolv.conf`: where queries go and how short names are completed (Kubernetes pods get
/// `search <ns>.svc.cluster.local svc.cluster.local cluster.local` and `ndots:5`).
package struct ResolvConf: Sendable, Equatable {
    package var nameservers: [String] = []
    package var search: [String] = []
    package var ndots = 1

    package init(nameservers: [String] = [], search: [String] = [], ndots: Int = 1) {
        self.nameservers = nameservers
        self.search = search
        self.ndots = ndots
    }

    package init(parsing text: String) {
        for raw in text.split(separator: "\n") {
            let fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let key = fields.first, !key.hasPrefix("#"), !key.hasPrefix(";") else { continue }
            switch key {
            case "nameserver" where fields.count > 1: nameservers.append(fields[1])
            case "search", "domain": search = Array(fields.dropFirst())
            case "options":
                for option in fields.dropFirst() where option.hasPrefix("ndots:") {
                    if let n = Int(option.dropFirst(6)) { ndots = min(max(n, 0), 15) }
                }
            default: break
            }
        }
    }

    /// The names tried for `name`, in order (the resolver's search-list rule).
    package func candidates(_ name: String) -> [String] {
        if name.hasSuffix(".") { return [String(name.dropLast())] }
        let completed = search.map { "\(name).\($0)" }
        return name.filter { $0 == "." }.count >= ndots ? [name] + completed : completed + [name]
    }
}

/// What a name resolved to: backends (host, port) and how long the answer may be kept.
package struct Resolution: Sendable, Equatable {
    package var endpoints: [Endpoint]
    package var ttl: Duration

    package struct Endpoint: Sendable, Hashable, Comparable {
        package var host: String
        package var port: Int
        package init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        package static func < (a: Endpoint, b: Endpoint) -> Bool { (a.host, a.port) < (b.host, b.port) }
    }
}

/// A stub resolver over UDP (NIO): A/AAAA and SRV for discovery, with the records' TTLs (which
/// `getaddrinfo` does not give). Answers larger than a UDP datagram (truncated) are taken as
/// they are: a headless Service with hundreds of pods needs EndpointSlice discovery instead.
package struct DNSResolver: Sendable {
    package struct Failure: Error, Sendable, CustomStringConvertible {
        package var description: String
    }

    let server: SocketAddress
    let conf: ResolvConf
    let timeout: Duration
    let attempts: Int

    /// - Parameter server: `host:port`; nil: the first nameserver of `/etc/resolv.conf`.
    package init(server: String?, conf: ResolvConf? = nil, timeout: Duration = .seconds(2), attempts: Int = 2) throws(Failure) {
        let conf = conf ?? ResolvConf(parsing: (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? "")
        let target: HostPort
        if let server {
            guard let parsed = HostPort(server) else { throw Failure(description: "resolver '\(server)' is not host:port") }
            target = parsed
        } else {
            guard let first = conf.nameservers.first else { throw Failure(description: "no nameserver in /etc/resolv.conf; set discovery.resolver") }
            target = HostPort(first.contains(":") ? "[\(first)]:53" : "\(first):53")!
        }
        do {
            self.server = try SocketAddress(ipAddress: target.host, port: target.port)
        } catch {
            throw Failure(description: "resolver address '\(target.host)' is not an IP address")
        }
        self.conf = conf
        self.timeout = timeout
        self.attempts = attempts
    }

    /// Every address of `name` (A and AAAA), each with `port`.
    package func addresses(_ name: String, port: Int) async throws(Failure) -> Resolution {
        let (records, _) = try await lookup(name, types: [.a, .aaaa])
        return Self.resolution(records, port: port)
    }

    /// Every target of `name`'s SRV records with its port; targets' addresses from the answer's
    /// additional records, else looked up.
    package func services(_ name: String) async throws(Failure) -> Resolution {
        let (records, additional) = try await lookup(name, types: [.srv])
        var endpoints: [Resolution.Endpoint] = []
        var ttl = UInt32.max
        for record in records {
            guard case .srv(_, _, let port, let target) = record.data else { continue }
            ttl = min(ttl, record.ttl)
            var found = additional.filter { $0.name.lowercased() == target.lowercased() }
            if !found.contains(where: { if case .address = $0.data { true } else { false } }) {
                found = try await lookup(target, types: [.a, .aaaa], search: false).records
            }
            for address in found {
                guard case .address(let host) = address.data else { continue }
                ttl = min(ttl, address.ttl)
                endpoints.append(.init(host: host, port: Int(port)))
            }
        }
        return Resolution(endpoints: Array(Set(endpoints)).sorted(), ttl: .seconds(ttl == .max ? 0 : Int64(ttl)))
    }

    static func resolution(_ records: [DNSMessage.Record], port: Int) -> Resolution {
        var endpoints: Set<Resolution.Endpoint> = []
        var ttl = UInt32.max
        for record in records {
            guard case .address(let host) = record.data else { continue }
            endpoints.insert(.init(host: host, port: port))
            ttl = min(ttl, record.ttl)
        }
        return Resolution(endpoints: endpoints.sorted(), ttl: .seconds(ttl == .max ? 0 : Int64(ttl)))
    }

    /// The answers for the first candidate name that exists. No such name (NXDOMAIN) for every
    /// candidate, or a name without such records, is an empty answer; a server failure or no
    /// answer at all is an error (the caller keeps what it had).
    func lookup(
        _ name: String, types: [DNSMessage.RecordType], search: Bool = true
    ) async throws(Failure) -> (
        records: [DNSMessage.Record], additional: [DNSMessage.Record]
    ) {
        for candidate in search ? conf.candidates(name) : [name] {
            var records: [DNSMessage.Record] = []
            var additional: [DNSMessage.Record] = []
            var exists = false
            for type in types {
                let response = try await exchange(candidate, type)
                switch response.rcode {
                case 0:
                    exists = true
                    records += response.answers
                    additional += response.additional
                case 3: continue
                default: throw Failure(description: "DNS server answered rcode \(response.rcode) for \(candidate)")
                }
            }
            if exists { return (records, additional) }
        }
        return ([], [])
    }

    /// One question, over UDP, retried `attempts` times on timeout.
    func exchange(_ name: String, _ type: DNSMessage.RecordType) async throws(Failure) -> DNSMessage.Response {
        var lastError = "no answer"
        for _ in 0..<attempts {
            let id = UInt16.random(in: 0...UInt16.max)
            do {
                if let response = try await send(DNSMessage.query(id: id, name: name, type: type), id: id) { return response }
                lastError = "no answer from \(server) within \(timeout.formatted)"
            } catch let error as Failure {
                throw error
            } catch {
                lastError = "\(error)"
            }
        }
        throw Failure(description: "resolving \(name): \(lastError)")
    }

    private func send(_ query: [UInt8], id: UInt16) async throws -> DNSMessage.Response? {
        let server = self.server
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: server.protocol == .inet6 ? "::" : "0.0.0.0", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
                }
            }
        let timeout = self.timeout
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(AddressedEnvelope(remoteAddress: server, data: ByteBuffer(bytes: query)))
            return try await withThrowingTaskGroup(of: DNSMessage.Response?.self) { group in
                group.addTask {
                    for try await envelope in inbound where envelope.remoteAddress == server {
                        guard let response = try? DNSMessage.parse(Array(envelope.data.readableBytesView)), response.id == id else { continue }
                        return response
                    }
                    return nil
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                return first
            }
        }
    }
}
