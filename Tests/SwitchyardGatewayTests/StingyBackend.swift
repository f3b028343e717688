import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A backend whose listen backlog is as small as it gets (`listen(fd, 0)`: one connection waits to
/// be accepted, further SYNs are dropped) and that accepts only when the test allows it: the
/// shape of a model server overwhelmed by new connections. GETs get 404 (no info endpoints);
/// completions get a small JSON answer, held while their body has `"hold":true` until
/// ``releaseHeld()``. Every answer closes its connection.
final class StingyBackend: Sendable {
    let port: Int
    private let fd: Int32
    private let permits = DispatchSemaphore(value: 0)
    private let held = DispatchSemaphore(value: 0)
    private let unlimited = Atomic<Bool>(true)
    private let stopped = Atomic<Bool>(false)
    private let acceptedCount = Atomic<Int>(0)
    /// Connections accepted so far.
    var accepted: Int { acceptedCount.load(ordering: .relaxed) }
    /// Requests received (held ones included), by first line (`POST /v1/chat/completions`).
    let served = Mutex<[String]>([])

    init() throws {
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        fd = sock
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(sock, 0) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// The accept call already waiting takes one more connection; later ones wait in the
    /// backlog until ``acceptAll()``.
    func acceptOneMoreThenStop() { unlimited.store(false, ordering: .relaxed) }
    func acceptAll() {
        unlimited.store(true, ordering: .relaxed)
        permits.signal()
    }
    func releaseHeld() { held.signal() }

    /// Connects a client that is never accepted: with a backlog of 0 it fills the queue.
    func fillBacklog() -> Int32 {
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return client
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        permits.signal()
        held.signal()
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .relaxed) {
            if !unlimited.load(ordering: .relaxed) { permits.wait() }
            if stopped.load(ordering: .relaxed) { return }
            let connection = accept(fd, nil, nil)
            guard connection >= 0 else { return }
            acceptedCount.add(1, ordering: .relaxed)
            Thread.detachNewThread { [self] in serve(connection) }
        }
    }

    private func serve(_ connection: Int32) {
        defer { close(connection) }
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let text = String(decoding: data, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound]
                let length =
                    head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if text.utf8.count - text.distance(from: text.startIndex, to: end.upperBound) >= length { break }
            }
            let n = read(connection, &buffer, buffer.count)
            guard n > 0 else { return }
            data += buffer[0..<n]
        }
        let text = String(decoding: data, as: UTF8.self)
        let firstLine = String(text.prefix { $0 != "\r" })
        served.withLock { $0.append(firstLine) }
        let reply: String
        if firstLine.hasPrefix("GET") {
            reply = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        } else {
            if text.contains(#""hold":true"#) { held.wait() }
            let body =
                #"{"id":"x","object":"chat.completion","model":"upstream-model","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#
            reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
        }
        _ = reply.withCString { write(connection, $0, strlen($0)) }
    }
}
