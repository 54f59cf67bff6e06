@testable import AgentOSKernel
import AgentOSProtocol
import AgentOSStore
import Foundation
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

/// A message for a mailbox that is being read goes to its reader at once
/// and is stored only if not acked within `Bus.ackGrace`; its sender is
/// answered once it is acked or stored, never before.
@Suite("Bus confirms")
struct BusConfirmTests {
    func bus() throws -> (Bus, StateStore) {
        let directory = NSTemporaryDirectory() + "bus-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = try StateStore(directory: directory)
        return (Bus(store: store, events: EventHub(store: store), mailboxLimit: 100), store)
    }

    /// What a test saw, from whichever thread saw it.
    final class Seen: Sendable {
        private let state = Mutex<[String]>([])
        func add(_ id: String) { state.withLock { $0.append(id) } }
        var ids: [String] { state.withLock { $0 } }
        var first: String? { ids.first }
    }

    /// A reader of team/b's mailbox whose sink takes everything.
    func read(_ bus: Bus) throws -> (waiting: [String], feed: MailboxFeed, taken: Seen) {
        let (waiting, feed) = try bus.receive("team/b")
        let taken = Seen()
        feed.redirect(to: { message in
            taken.add(message.id)
            return true
        }, stalled: { _ in })
        return (waiting.map(\.id), feed, taken)
    }

    /// Sends to team/b; what the sender is answered (its message's id, or "failed") lands in the result.
    func send(_ bus: Bus, _ text: String) throws -> Seen {
        var request = Agentos_V1_SendRequest()
        request.to = "team/b"
        request.payload = Data(text.utf8)
        let answered = Seen()
        try bus.submit(request, from: "team/a", to: "team/b").whenFulfilled { result in
            answered.add((try? result.get())?.id ?? "failed")
        }
        return answered
    }

    func waitFor(_ seen: Seen) {
        let deadline = Date().addingTimeInterval(2)
        while seen.first == nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.002) }
    }

    @Test func anAckInTimeAnswersTheSenderAndNothingIsStored() throws {
        let (bus, store) = try bus()
        let (_, feed, taken) = try read(bus)
        let answered = try send(bus, "hello")
        let delivered = taken.ids
        #expect(delivered.count == 1, "handed to the reader at once")
        #expect(answered.first == nil, "the sender is answered only once it is acked or stored")
        #expect(bus.acknowledgeHanded(delivered, identity: "team/b") == 1)
        #expect(answered.ids == delivered)
        Thread.sleep(forTimeInterval: Double(Bus.ackGrace) / 1e9 * 4)
        #expect(try store.messages(for: "team/b").isEmpty, "an acked message is never written")
        #expect(try bus.mailbox("team/b", limit: 10).depth == 0)
        bus.close(feed)
    }

    @Test func oneNotAckedInTimeIsStoredThenAnsweredAndAnAckRemovesIt() throws {
        let (bus, store) = try bus()
        let (_, feed, taken) = try read(bus)
        let answered = try send(bus, "slow")
        let id = try #require(taken.first)
        waitFor(answered)
        #expect(answered.ids == [id])
        #expect(try store.messages(for: "team/b").map(\.id) == [id], "stored once its grace ended")
        #expect(taken.ids == [id], "not handed to the reader a second time")
        #expect(try bus.acknowledge([id], identity: "team/b") == 1)
        #expect(try store.messages(for: "team/b").isEmpty)
        bus.close(feed)
    }

    @Test func aReaderThatComesAgainGetsWhatWasNotAckedAndShutdownStoresIt() throws {
        let (bus, store) = try bus()
        let first = try read(bus)
        let answered = try send(bus, "again")
        let id = try #require(first.taken.first)
        bus.close(first.feed)
        let second = try read(bus)
        #expect(second.waiting == [id], "a message not acked is handed to the next reader")
        #expect(try bus.mailbox("team/b", limit: 10).depth == 1)
        bus.close(second.feed)
        // At shutdown what is not acked is written, whatever its grace.
        bus.finishAll()
        #expect(try store.messages(for: "team/b").map(\.id) == [id])
        #expect(answered.ids == [id])
    }

    /// A message held for a reader that left, then one stored at once (no
    /// reader now): the store keeps them in the order they came.
    @Test func aMailboxKeepsOneOrderWhenHeldAndStoredMessagesMeet() throws {
        let (bus, store) = try bus()
        let reader = try read(bus)
        let first = try send(bus, "held for the reader")
        bus.close(reader.feed)
        let second = try send(bus, "stored at once")
        waitFor(second)
        waitFor(first)
        let ids = first.ids + second.ids
        #expect(try store.messages(for: "team/b").map(\.id) == ids, "held one first, as sent")
    }

    @Test func withoutAReaderAMessageIsStoredFirst() throws {
        let (bus, store) = try bus()
        let answered = try send(bus, "nobody reads")
        waitFor(answered)
        #expect(try store.messages(for: "team/b").map(\.id) == answered.ids)
    }
}
