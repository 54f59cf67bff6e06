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
        feed.redirect(to: { message in
            taken.withLock { $0.append(message.id) }
            return true
        }, stalled: { _ in Issue.record("a sink with room stalled") })
        feed.deliver(message("m3"))
        #expect(taken.withLock { $0 } == ["m1", "m2", "m3"])
        feed.finish()
        feed.deliver(message("m4"))
        #expect(taken.withLock { $0 } == ["m1", "m2", "m3"])
    }

    @Test func aSinkWithoutRoomGetsWhatWaitedInOrderWhenItHasRoomAgain() {
        let feed = MailboxFeed(identity: "team/b", buffer: 10)
        let room = Mutex(1)
        let taken = Mutex<[String]>([])
        let callback = Mutex<(@Sendable () -> Void)?>(nil)
        feed.redirect(to: { message in
            room.withLock { room in
                guard room > 0 else { return false }
                room -= 1
                taken.withLock { $0.append(message.id) }
                return true
            }
        }, stalled: { again in callback.withLock { $0 = again } })
        for id in ["m1", "m2", "m3", "m4"] { feed.deliver(message(id)) }
        #expect(taken.withLock { $0 } == ["m1"])
        let again = callback.withLock { $0 }
        #expect(again != nil, "a sink without room asks to be called back")
        room.withLock { $0 = 2 }
        callback.withLock { $0 = nil }
        again?()
        #expect(taken.withLock { $0 } == ["m1", "m2", "m3"])
        // Still short of room: it asked to be called back again.
        room.withLock { $0 = 10 }
        callback.withLock { $0 }?()
        feed.deliver(message("m5"))
        #expect(taken.withLock { $0 } == ["m1", "m2", "m3", "m4", "m5"])
    }

    @Test func aFeedWhoseReaderFallsBehindEndsOverflowed() async {
        // Too many buffered before the reader caught up.
        let buffered = MailboxFeed(identity: "team/b", buffer: 2)
        for id in ["m1", "m2", "m3"] { buffered.deliver(message(id)) }
        #expect(await buffered.end.value() == .overflowed)

        // A sink that never has room again: what waits for it is bounded too.
        let stuck = MailboxFeed(identity: "team/b", buffer: 2)
        stuck.redirect(to: { _ in false }, stalled: { _ in })
        for id in ["m1", "m2", "m3", "m4"] { stuck.deliver(message(id)) }
        #expect(await stuck.end.value() == .overflowed)

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
