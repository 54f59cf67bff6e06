@testable import AgentOSKernel
import AgentOSStore
import Synchronization
import Testing

/// The pieces that let the event loop answer bus calls: a mailbox feed
/// handed to its reader's sink, and requests withdrawn by callback.
@Suite("Bus delivery")
struct BusDeliveryTests {
    func message(_ id: String, seq: Int64 = 0) -> MessageRecord {
        MessageRecord(seq: seq, id: id, recipient: "team/b", sender: "team/a", type: "message",
                      contentType: "text/plain", payload: [], sentAt: 0)
    }

    @Test func aFeedHandsWhatItBufferedThenEachArrivalToItsSinkInOrder() {
        let feed = MailboxFeed(identity: "team/b", buffer: 10)
        feed.deliver(message("m1"))
        feed.deliver(message("m2"))
        let taken = Mutex<[String]>([])
        feed.redirect { message in
            taken.withLock { $0.append(message.id) }
            return true
        }
        feed.deliver(message("m3"))
        #expect(taken.withLock { $0 } == ["m1", "m2", "m3"])
        feed.finish()
        feed.deliver(message("m4"))
        #expect(taken.withLock { $0 } == ["m1", "m2", "m3"])
    }

    @Test func aFeedWhoseReaderFallsBehindEndsOverflowed() async {
        // Too many buffered before the reader caught up.
        let buffered = MailboxFeed(identity: "team/b", buffer: 2)
        for id in ["m1", "m2", "m3"] { buffered.deliver(message(id)) }
        #expect(await buffered.end.value() == .overflowed)

        // A sink that cannot take more (its connection's queue is full).
        let refused = MailboxFeed(identity: "team/b", buffer: 2)
        let room = Mutex(1)
        refused.redirect { _ in
            room.withLock { room in
                defer { room -= 1 }
                return room > 0
            }
        }
        refused.deliver(message("m1"))
        refused.deliver(message("m2"))
        #expect(await refused.end.value() == .overflowed)

        let finished = MailboxFeed(identity: "team/b", buffer: 2)
        finished.finish()
        #expect(await finished.end.value() == .finished)
    }

    @Test func aRequestCancelledBeforeItsWithdrawalIsKnownIsWithdrawnWhenItIs() {
        let registry = RequestRegistry()
        let withdrawn = Mutex(0)
        // As a request's outcome does: a withdrawn request is finished.
        func withdraw(_ id: UInt64, _ weight: Int) -> @Sendable () -> Void {
            { withdrawn.withLock { $0 += weight }; registry.finished(id: id) }
        }
        #expect(registry.reserve(id: 1))
        #expect(!registry.reserve(id: 1), "an id in flight is refused")
        registry.cancel(id: 1)
        registry.attach(id: 1, cancel: withdraw(1, 1))
        #expect(withdrawn.withLock { $0 } == 1)

        #expect(registry.reserve(id: 2))
        registry.attach(id: 2, cancel: withdraw(2, 10))
        registry.cancel(id: 2)
        #expect(withdrawn.withLock { $0 } == 11)

        // Answered before its withdrawal was attached: nothing to withdraw, and the id is free.
        #expect(registry.reserve(id: 3))
        registry.finished(id: 3)
        registry.attach(id: 3, cancel: withdraw(3, 100))
        #expect(withdrawn.withLock { $0 } == 11)
        #expect(!registry.contains(id: 3))

        #expect(registry.reserve(id: 4))
        registry.attach(id: 4, cancel: withdraw(4, 1_000))
        registry.cancelAll()
        #expect(withdrawn.withLock { $0 } == 1_011)
        #expect(!registry.reserve(id: 5), "a closed connection takes no more")
    }

    @Test func busCallsFollowTheBacklogTheyFind() {
        let backlog = BusBacklog()
        #expect(backlog.isEmpty)
        backlog.add()
        backlog.add()
        backlog.remove()
        #expect(!backlog.isEmpty)
        backlog.remove()
        #expect(backlog.isEmpty)
    }
}

@Suite("Bus addresses")
struct BusAddressTests {
    @Test func aPolicyPathIsItsOwnMailboxAndANameNeedsALookup() throws {
        #expect(try Bus.namedRecipient("team/writer") == "team/writer")
        #expect(try Bus.namedRecipient("a/b/c") == "a/b/c")
        #expect(try Bus.namedRecipient("team/...") == "team/...")
        #expect(try Bus.namedRecipient("team/.hidden") == "team/.hidden")
        #expect(try Bus.namedRecipient("operator") == "operator")
        #expect(try Bus.namedRecipient("writer") == nil)
    }

    @Test(arguments: ["/writer", "team/", "team//writer", "team/./writer", "team/..", "./x", "../x", "/"])
    func aMalformedPathIsRefused(_ to: String) {
        #expect(throws: KernelError.self) { try Bus.namedRecipient(to) }
    }

    @Test func teamsAreParentPaths() {
        #expect(Bus.team(of: "team/a").map { String(Substring($0)) } == "team")
        #expect(Bus.team(of: "p/sup/w1").map { String(Substring($0)) } == "p/sup")
        #expect(Bus.team(of: "plain") == nil)
    }
}
