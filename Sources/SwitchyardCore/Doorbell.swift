import Synchronization

/// Wakes one waiting task before its timeout: the pool rings it when work is due sooner than the
/// deadline its ticker sleeps to (a request queued with an earlier deadline, a cooldown).
/// A ring while nobody waits is kept for the next wait.
package final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    package init() {}

    package func ring() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let waiter = s.waiter else {
                s.rung = true
                return nil
            }
            s.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns when rung, after `timeout`, or when the task is cancelled.
    package func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    self.ring()
                } catch {}
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { s -> Bool in
                        if s.rung || Task.isCancelled {
                            s.rung = false
                            return true
                        }
                        s.waiter = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                ring()
            }
            group.cancelAll()
        }
    }
}
