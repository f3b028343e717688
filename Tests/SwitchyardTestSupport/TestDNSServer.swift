import NIOCore
import NIOPosix
import SwitchyardGateway
import Synchronization

/// A DNS server on a loopback UDP port for discovery tests: answers from a record table the test
/// changes while it runs (a name it does not know is NXDOMAIN); counts the questions.
package final class TestDNSServer: Sendable {
    private let records = Mutex<[String: [DNSMessage.Record]]>([:])
    private let asked = Mutex<[String: Int]>([:])
    /// Answer SERVFAIL to everything (a failing resolver).
    package let failing = Atomic<Bool>(false)

    package init() {}

    /// Replaces the records of `name` (empty: the name exists with no records of that kind).
    package func set(_ name: String, _ list: [DNSMessage.Record]) {
        records.withLock { $0[name.lowercased()] = list }
    }

    package func remove(_ name: String) { records.withLock { $0[name.lowercased()] = nil } }

    package func questions(_ name: String) -> Int { asked.withLock { $0[name.lowercased()] ?? 0 } }

    func answer(_ query: [UInt8]) -> [UInt8]? {
        guard let (name, type) = DNSMessage.question(query) else { return nil }
        asked.withLock { $0[name.lowercased(), default: 0] += 1 }
        if failing.load(ordering: .relaxed) { return DNSMessage.response(to: query, rcode: 2, answers: []) }
        guard let all = records.withLock({ $0[name.lowercased()] }) else { return DNSMessage.response(to: query, rcode: 3, answers: []) }
        let wanted = all.filter { record in
            switch record.data {
            case .address(let a): type == (a.contains(":") ? DNSMessage.RecordType.aaaa : .a).rawValue
            case .srv: type == DNSMessage.RecordType.srv.rawValue
            default: false
            }
        }
        // SRV targets' addresses ride along as additional records (CoreDNS does the same).
        var additional: [DNSMessage.Record] = []
        for case .srv(_, _, _, let target) in wanted.map(\.data) {
            additional += records.withLock { $0[target.lowercased()] ?? [] }
        }
        return DNSMessage.response(to: query, answers: wanted, additional: additional)
    }

    /// Serves on 127.0.0.1 for the duration of `body` (its argument: the port).
    package func run<T: Sendable>(_ body: @Sendable (Int) async throws -> T) async throws -> T {
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
                }
            }
        let port = channel.channel.localAddress?.port ?? 0
        return try await channel.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    for try await envelope in inbound {
                        guard let reply = self.answer(Array(envelope.data.readableBytesView)) else { continue }
                        try await outbound.write(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: ByteBuffer(bytes: reply)))
                    }
                    return nil
                }
                let result = try await body(port)
                group.cancelAll()
                return result
            }
        }
    }
}
