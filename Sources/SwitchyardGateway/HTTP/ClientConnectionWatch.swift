import NIOCore
import Synchronization

/// Tells a request when its client's connection closes, so upstream work can be cancelled.
///
/// One `closeFuture` callback is registered per connection, not per request: a keep-alive
/// connection may carry thousands of requests and callbacks on a future are never removed.
package final class ClientConnectionWatch: Sendable {
    private struct Connection {
        var nextID: UInt64 = 0
        var subscribers: [UInt64: @Sendable () -> Void] = [:]
    }

    private let connections = Mutex<[ObjectIdentifier: Connection]>([:])

    package init() {}

    /// Calls `onClose` once if the channel closes before the returned token is cancelled.
    package func subscribe(_ channel: any Channel, onClose: @escaping @Sendable () -> Void) -> Subscription {
        let key = ObjectIdentifier(channel)
        let (id, isNew) = connections.withLock { map -> (UInt64, Bool) in
            var connection = map[key]
            let isNew = connection == nil
            if isNew { connection = Connection() }
            let id = connection!.nextID
            connection!.nextID += 1
            connection!.subscribers[id] = onClose
            map[key] = connection
            return (id, isNew)
        }
        if isNew {
            channel.closeFuture.whenComplete { _ in
                let subscribers = self.connections.withLock { $0.removeValue(forKey: key)?.subscribers.values }
                subscribers?.forEach { $0() }
            }
        }
        if !channel.isActive {
            // Closed before we registered: the callback above may already have run.
            let callback = connections.withLock { $0[key]?.subscribers.removeValue(forKey: id) }
            callback?()
        }
        return Subscription(watch: self, key: key, id: id)
    }

    fileprivate func unsubscribe(key: ObjectIdentifier, id: UInt64) {
        connections.withLock { map in
            _ = map[key]?.subscribers.removeValue(forKey: id)
        }
    }

    package struct Subscription: Sendable {
        fileprivate let watch: ClientConnectionWatch
        fileprivate let key: ObjectIdentifier
        fileprivate let id: UInt64

        package func cancel() { watch.unsubscribe(key: key, id: id) }
    }
}
