/**
 * The test kit itself: the verdict on a peer's end against a protocol's model (pure, case by
 * case), the checks of the handlers' lives, each invariant caught when a handler or a server
 * breaks it on purpose, and `simulate` from a command line (in this process, and as the installed
 * binary runs it, with a handler module in plain JavaScript).
 */
import { extendScope } from "#line/kit"
import { forkDetach } from "#line/runtime"
import { interruption } from "#test-line/serving"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Scope, Stream } from "effect"
import * as fc from "fast-check"
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import type { Connection } from "../src/index.js"
import { Server, TestKit } from "../src/index.js"
import * as Command from "../src/internal/testkit/command.js"
import * as Commands from "../src/internal/testkit/commands.js"
import * as Runner from "../src/internal/testkit/runner.js"
import * as Verdict from "../src/internal/testkit/verdict.js"
import { bin as installed } from "./utils/cli.js"

const root = path.resolve(import.meta.dirname, "..")
const timeouts = { shutdownTimeout: "400 millis", cleanupTimeout: "500 millis" } as const
const bytes = (text: string) => Buffer.from(text)

/** A model whose answers are the lines sent, uppercased, with a farewell; `ERR` closes it. */
const lines: TestKit.Protocol = {
  name: "lines",
  farewell: bytes("BYE\n"),
  conversation: () => {
    const answers: Array<Uint8Array> = []
    let partial = ""
    let closed = false
    return {
      feed: (chunk) => {
        for (const text of Buffer.from(chunk).toString().split(/(?<=\n)/)) {
          if (closed) return
          partial += text
          if (!partial.endsWith("\n")) continue
          closed = partial === "err\n"
          answers.push(bytes(closed ? "ERR\n" : partial.toUpperCase()))
          partial = ""
        }
      },
      expected: () => answers,
      complete: () => Buffer.concat([...answers, bytes(closed ? "" : partial.toUpperCase())]),
      closed: () => closed
    }
  }
}

const answerOf = (protocol: TestKit.Protocol, sent: string) => {
  const conversation = protocol.conversation()
  conversation.feed(bytes(sent))
  return Verdict.answerOf(protocol, conversation)
}

const facts = (overrides: Partial<Verdict.Facts> = {}): Verdict.Facts => ({
  halfClosed: true,
  leftItself: false,
  refused: false,
  intoShutdown: undefined,
  forced: false,
  ...overrides
})

describe("the verdict on a peer's end", () => {
  const judge = (
    sent: string,
    received: string,
    how: "eof" | "reset" | "closed",
    f: Partial<Verdict.Facts> = {},
    protocol: TestKit.Protocol = lines
  ) => Verdict.judgeEnd(answerOf(protocol, sent), bytes(received), how, facts(f), 400)

  it("a complete answer, then a FIN, after the peer's half-close, holds", () => {
    expect(judge("ab\ncd", "AB\nCD", "eof")).toBeUndefined()
    expect(judge("abc", "abc", "eof", {}, TestKit.echo)).toBeUndefined()
  })

  it("a partial answer, then a FIN, is a cut-off answer that looks complete", () => {
    expect(judge("ab\ncd", "AB\nC", "eof")).toMatchObject({
      reason: "CutOffThenFin",
      detail: "a clean end after 4 of 5 bytes: a cut-off answer that looks complete"
    })
    expect(judge("abc", "", "eof", {}, TestKit.echo)?.reason).toBe("CutOffThenFin")
  })

  it("a FIN before the peer half-closed holds only after whole answers and the whole farewell, once shutdown began", () => {
    const open = { halfClosed: false }
    expect(judge("ab\ncd\n", "AB\nBYE\n", "eof", { ...open, intoShutdown: 5 })).toBeUndefined()
    expect(judge("ab\ncd\n", "BYE\n", "eof", { ...open, intoShutdown: 5 })).toBeUndefined()
    expect(judge("ab\ncd\n", "AB\nCD\nBYE\n", "eof", { ...open, intoShutdown: 5 })).toBeUndefined()
    // The farewell cut short, an answer cut short, or no shutdown at all: not complete.
    expect(judge("ab\ncd\n", "AB\nBY", "eof", { ...open, intoShutdown: 5 })?.reason).toBe("CutOffThenFin")
    expect(judge("ab\ncd\n", "AB\n", "eof", { ...open, intoShutdown: 5 })?.reason).toBe("CutOffThenFin")
    expect(judge("ab\ncd\n", "AB\n", "eof", open)).toMatchObject({
      reason: "CutOffThenFin",
      detail:
        "a clean end for a peer that had not half-closed, after 3 bytes: not whole answers followed by the farewell"
    })
    // Before shutdown, the farewell is no answer at all.
    expect(judge("ab\ncd\n", "AB\nBYE\n", "eof", open)?.reason).toBe("NotAnAnswer")
    expect(judge("ab", "", "eof", { ...open, intoShutdown: 5 }, TestKit.echo)).toMatchObject({
      reason: "CutOffThenFin",
      detail: "a clean end for a peer that had not half-closed, after 0 bytes: " +
        "the echo model ends a conversation only at the peer's half-close"
    })
  })

  it("a conversation the server closed by the protocol's rules ends with a FIN after its answers", () => {
    expect(judge("ab\nerr\nmore\n", "AB\nERR\n", "eof", { halfClosed: false })).toBeUndefined()
    expect(judge("ab\nerr\nmore\n", "AB\n", "eof", { halfClosed: false })?.reason).toBe("CutOffThenFin")
  })

  it("a reset comes only at the shutdown deadline or after", () => {
    expect(judge("ab\n", "AB\n", "reset", { intoShutdown: 400 })).toBeUndefined()
    expect(judge("ab\n", "A", "closed", { intoShutdown: 1000 })).toBeUndefined()
    expect(judge("ab\n", "AB\n", "reset")).toMatchObject({
      reason: "EarlyReset",
      detail: "a connection ended with a reset while the server served"
    })
    expect(judge("ab\n", "AB\n", "reset", { intoShutdown: 399.6 })).toMatchObject({
      reason: "EarlyReset",
      detail: "a connection ended with a reset 400 ms into shutdown, before its 400 ms deadline"
    })
  })

  it("after a forced stop, a reset holds at any moment; a cut-off answer then a FIN still does not", () => {
    expect(judge("ab\n", "A", "reset", { forced: true })).toBeUndefined()
    expect(judge("ab\n", "", "closed", { forced: true, intoShutdown: 3 })).toBeUndefined()
    expect(judge("ab\n", "AB\n", "eof", { forced: true })).toBeUndefined()
    expect(judge("ab\n", "A", "eof", { forced: true })?.reason).toBe("CutOffThenFin")
    expect(judge("ab\n", "AX", "reset", { forced: true })?.reason).toBe("NotAnAnswer")
  })

  it("bytes that are no prefix of an allowed answer are not an answer, whoever ended the connection", () => {
    expect(judge("ab\n", "AX", "eof")).toMatchObject({
      reason: "NotAnAnswer",
      detail: "at the end: received 2 bytes that are not a prefix of the 3-byte answer the lines model expects " +
        "(they differ from byte 1)"
    })
    expect(judge("ab\n", "AB\nC", "reset", { leftItself: true })?.reason).toBe("NotAnAnswer")
    // Once the peer left by itself, or was never served, its end is its own.
    expect(judge("ab\n", "A", "eof", { leftItself: true })).toBeUndefined()
    expect(judge("ab\n", "", "reset", { refused: true })).toBeUndefined()
  })

  it("before its half-close, a peer may hold the start of its answers; the farewell's start only once shutdown began", () => {
    const answer = answerOf(lines, "ab\ncd")
    const open = facts({ halfClosed: false })
    expect(Verdict.inconsistency(answer, bytes("AB\n"), open)).toBeUndefined()
    // The unterminated line is answered only at the half-close.
    expect(Verdict.inconsistency(answer, bytes("AB\nC"), open)).toMatch(/not a prefix of the 3-byte answer/)
    expect(Verdict.inconsistency(answer, bytes("AB\nC"), facts())).toBeUndefined()
    expect(Verdict.inconsistency(answer, bytes("AB\nBY"), open)).toMatch(/not a prefix/)
    expect(Verdict.inconsistency(answer, bytes("AB\nBY"), { ...open, intoShutdown: 1 })).toBeUndefined()
    expect(Verdict.inconsistency(answer, bytes("BY"), { ...open, intoShutdown: 1 })).toBeUndefined()
    expect(Verdict.inconsistency(answer, bytes("XB\nBY"), { ...open, intoShutdown: 1 })).toMatch(/differ from byte 0/)
  })

  it("with no model, no byte and no end can be judged", () => {
    expect(Verdict.judgeEnd(undefined, bytes("anything"), "reset", facts({ halfClosed: false }), 400))
      .toBeUndefined()
  })

  it("a pure answer's model answers what was sent so far, in one unit", () => {
    const upper = TestKit.fromAnswer("upper", (sent) => bytes(Buffer.from(sent).toString().toUpperCase()))
    const conversation = upper.conversation()
    conversation.feed(bytes("ab"))
    conversation.feed(bytes("c"))
    expect(conversation.expected().map((a) => Buffer.from(a).toString())).toEqual(["ABC"])
    expect(Buffer.from(conversation.complete!()).toString()).toBe("ABC")
    conversation.feed(bytes("d"))
    expect(Buffer.from(conversation.complete!()).toString()).toBe("ABCD")
  })
})

describe("the checks of the handlers' lives", () => {
  const record = (overrides: Partial<Runner.HandlerRecord>): Runner.HandlerRecord => ({
    peer: "127.0.0.1:40000",
    startedAt: 0,
    endedAt: 10,
    exit: Exit.void,
    notifiedAt: undefined,
    finalized: 1,
    ...overrides
  })
  const timing = { drainDelay: 0, shutdownTimeout: 400 }
  const check = (r: Runner.HandlerRecord, notice: "exact" | "cut" = "exact") =>
    Runner.handlersViolation([r], 5, timing, notice)

  it("a handler still running when shutdown began, and after the notice was due, must have had it", () => {
    expect(check(record({ endedAt: 6 }))).toMatchObject({
      reason: "DrainNotice",
      detail: "the handler of 127.0.0.1:40000, running when shutdown began, ran 1 ms into it without the drain notice"
    })
    expect(check(record({ endedAt: 6, notifiedAt: 5 }))).toBeUndefined()
    // Ended at the very moment shutdown began, or started after: not owed.
    expect(check(record({ endedAt: 5 }))).toBeUndefined()
    expect(check(record({ startedAt: 6, endedAt: 20 }))).toBeUndefined()
    expect(Runner.handlersViolation([record({ endedAt: 50 })], 5, { ...timing, drainDelay: 100 }, "exact"))
      .toBeUndefined()
  })

  it("on a clock that is not exact, only a handler the deadline cut off must have had the notice", () => {
    expect(check(record({ endedAt: 300, exit: Exit.failCause(interruption) }), "cut")).toBeUndefined()
    expect(check(record({ endedAt: 405, exit: Exit.failCause(interruption) }), "cut")?.reason).toBe(
      "DrainNotice"
    )
    expect(check(record({ endedAt: 405 }), "cut")).toBeUndefined()
  })

  it("every handler ends, its finalizers run once, and none dies", () => {
    expect(check(record({ endedAt: undefined }))).toMatchObject({ reason: "Leak" })
    expect(check(record({ finalized: 0 }))).toMatchObject({
      reason: "Finalizer",
      detail: "the finalizers of 127.0.0.1:40000's handler never all ran: its scope was not closed, or one never ended"
    })
    expect(check(record({ finalized: 2 }))?.detail).toBe(
      "the finalizers of 127.0.0.1:40000's handler ran 2 times, not once"
    )
    expect(check(record({ exit: Exit.die(new Error("boom")) }))).toMatchObject({
      reason: "HandlerDied",
      detail: "the handler of 127.0.0.1:40000 died: Error: boom"
    })
    // A handler's typed failure is its protocol's business.
    expect(check(record({ exit: Exit.fail("peer fault"), notifiedAt: 5 }))).toBeUndefined()
  })
})

describe("when an end is due", () => {
  const timing = { shutdownTimeout: 400, cleanupTimeout: 500, drainDelay: 100, margin: 10_000, deadlineMargin: 5 }
  const late = (times: Partial<Commands.EndTimes>) =>
    Commands.lateness({ endedAt: 0, startedAt: 0, forcedAt: undefined, resumedAt: 0, ...times }, timing)

  it("by the drain delay, the shutdown and cleanup timeouts and the margin after the shutdown began", () => {
    expect(late({ startedAt: 10, endedAt: 1015 })).toBeUndefined()
    expect(late({ startedAt: 10, endedAt: 1015.5 })).toMatchObject({
      reason: "Late",
      detail: "a connection ended 1006 ms into shutdown, past its deadline of 1000 ms plus 5 ms"
    })
    // A peer that was not reading sees its end when it reads again.
    expect(late({ startedAt: 10, endedAt: 3000, resumedAt: 2995 })).toBeUndefined()
    expect(late({ startedAt: 10, endedAt: 3001, resumedAt: 2995 })?.reason).toBe("Late")
  })

  it("after a forced stop, at once: by the stop plus the margin, or when the peer reads again", () => {
    expect(late({ startedAt: 10, forcedAt: 50, endedAt: 55 })).toBeUndefined()
    expect(late({ startedAt: 10, forcedAt: 50, endedAt: 56 })).toMatchObject({
      reason: "Late",
      detail: "a connection ended 6 ms after a forced stop, which resets every connection at once (plus 5 ms)"
    })
    expect(late({ startedAt: 10, forcedAt: 50, endedAt: 900, resumedAt: 897 })).toBeUndefined()
    // Forced past the deadline (real time runs on between steps): an end at that moment is in time.
    expect(late({ startedAt: 10, forcedAt: 2000, endedAt: 2000 })).toBeUndefined()
    // An end before the forced stop is timed by the shutdown's deadline.
    expect(late({ startedAt: 10, forcedAt: 2000, endedAt: 1015 })).toBeUndefined()
    expect(late({ startedAt: 10, forcedAt: 2000, endedAt: 1500 })?.detail).toMatch(/into shutdown, past its deadline/)
  })
})

/** The cause of a simulated run's failure. */
const simulatedFailure = <E, R>(scenario: TestKit.Scenario, target: TestKit.Target<E, R>, seed = 1) =>
  Effect.map(
    Effect.flip(TestKit.simulate({ scenario, seed }, { ...timeouts, ...target }) as Effect.Effect<
      TestKit.SimulatedOutcome,
      TestKit.SimulationFailure
    >),
    (failure) => failure.cause as TestKit.ShutdownViolation
  )

const exchange: TestKit.Scenario = { operations: [{ _tag: "Exchange", data: bytes("hello") }] }
const dies: Server.Handler = () => Effect.die(new Error("boom"))
const echo: Server.Handler<Connection.ConnectionError> = (connection) =>
  Stream.runForEach(connection.stream, connection.write)

describe("each invariant, broken on purpose, is caught and named", () => {
  it.effect("a handler that dies is reported as its death, not as a connection the server never accepted", () =>
    Effect.gen(function*() {
      const modelled = yield* simulatedFailure(exchange, { handler: dies, protocol: TestKit.echo })
      expect(modelled.reason).toBe("EarlyReset")
      expect(modelled.message).toMatch(
        /^a connection ended with a reset while the server served \(peer 0, whose handler died: Error: boom\)$/
      )
      const bare = yield* simulatedFailure(exchange, { handler: dies })
      expect(bare).toMatchObject({ reason: "HandlerDied" })
      expect(bare.message).toMatch(/^the handler of 127\.0\.0\.1:\d+ died: Error: boom$/)
    }))

  it.live("on loopback too, a handler that dies is named as such, and the failed run leaves nothing behind", () =>
    Effect.gen(function*() {
      const before = yield* TestKit.holdings
      // It may die before its peer's connect completes, or after: a reset either way, and its death named.
      const failure = yield* Effect.flip(TestKit.checkShutdown(exchange, { ...timeouts, handler: dies }))
      expect(failure._tag).toBe("ShutdownViolation")
      expect(failure.message).toMatch(/died: Error: boom/)
      expect(["HandlerDied", "EarlyReset"]).toContain(failure.reason)
      // The run failed before its shutdown: the server it started was shut down all the same.
      yield* TestKit.expectNoLeaks(before)
    }))

  it.effect("a server whose shutdown never returns is a hang; one that returns past its deadline is late", () =>
    Effect.gen(function*() {
      /** A server of the user's own whose release, after the server's, runs `then`. */
      const releasing = (then: Effect.Effect<void>) => ({
        serve: (options: Server.Options) =>
          Effect.andThen(
            Effect.addFinalizer(() => then),
            Effect.map(Server.make(options), (server) => ({ port: server.address.port }))
          )
      })
      const open: TestKit.Scenario = { operations: [{ _tag: "Open" }] }
      expect(yield* simulatedFailure(open, releasing(Effect.never))).toMatchObject({
        reason: "Hang",
        detail: "shutdown did not return within its deadline of 900 ms plus 10000 ms"
      })
      // The silent peer is cut off at 400 ms, then the release takes a second more.
      expect(yield* simulatedFailure(open, releasing(Effect.sleep("1 second")))).toMatchObject({
        reason: "Late",
        detail: "shutdown returned 1400 ms after it began, past its deadline of 900 ms plus 0 ms"
      })
    }))

  it.effect("a handler whose finalizer never ends is named for it", () =>
    Effect.gen(function*() {
      const stuck: Server.Handler<Connection.ConnectionError, Scope.Scope> = (connection) =>
        Effect.andThen(Effect.addFinalizer(() => Effect.never), echo(connection))
      const failure = yield* simulatedFailure(exchange, { handler: stuck, protocol: TestKit.echo })
      expect(failure.reason).toBe("Finalizer")
    }))

  describe("a fiber of the server left running after its shutdown", () => {
    const conversation: TestKit.Simulated = {
      seed: 1,
      scenario: {
        operations: [{ _tag: "Open" }, { _tag: "Exchange", data: new Uint8Array([1, 2, 3]) }, { _tag: "Shutdown" }]
      }
    }
    // A fiber nobody ends, that holds nothing the other leak checks see: it waits for a deferred
    // never completed (Effect 3's `Effect.never` would hold a timer).
    const leftBehind = Effect.flatMap(Deferred.make<void>(), (never) => forkDetach(Deferred.await(never)))
    const leak = <E, R>(target: TestKit.Target<E, R>) =>
      Effect.map(
        Effect.flip(TestKit.simulate(conversation, { ...timeouts, ...target }) as Effect.Effect<
          TestKit.SimulatedOutcome,
          TestKit.SimulationFailure
        >),
        (failure) => failure.cause
      )

    it.effect("is caught in a server of the user's making, which forks it as it starts", () =>
      Effect.gen(function*() {
        const serve = (options: Server.Options) =>
          Effect.andThen(leftBehind, Effect.map(Server.make(options), (server) => ({ port: server.address.port })))
        expect(yield* leak({ serve, protocol: TestKit.echo })).toMatchObject({
          reason: "Leak",
          detail: "1 fiber(s) of the server still alive"
        })
      }))

    it.effect("is caught in a handler, one per connection", () =>
      Effect.gen(function*() {
        const handler: Server.Handler<Connection.ConnectionError> = (connection) =>
          Effect.andThen(leftBehind, echo(connection))
        expect(yield* leak({ handler, protocol: TestKit.echo })).toMatchObject({
          reason: "Leak",
          detail: "2 fiber(s) of the server still alive"
        })
      }))

    it.effect("is not one that ended, even after its handler did", () =>
      Effect.gen(function*() {
        // Each handler's fiber waits for the handler's end: it outlives its parent, then ends.
        const handler: Server.Handler<Connection.ConnectionError> = (connection) =>
          Effect.flatMap(Deferred.make<void>(), (done) =>
            Effect.andThen(
              forkDetach(Deferred.await(done)),
              Effect.ensuring(echo(connection), Deferred.succeed(done, undefined))
            ))
        const outcome = yield* TestKit.simulate(conversation, { ...timeouts, handler, protocol: TestKit.echo })
        expect(outcome.handlers?.started).toBe(2)
        expect(outcome.verified).toBe(1)
      }))
  })

  it.effect("a handler that ignores the drain notice is cut off at the deadline, having been told", () =>
    Effect.gen(function*() {
      const outcome = yield* TestKit.simulate(
        { scenario: { operations: [{ _tag: "Open" }, { _tag: "Open" }] }, seed: 4 },
        { ...timeouts, handler: () => Effect.never }
      )
      expect(outcome.handlers).toEqual({ started: 2, notified: 2 })
      expect(outcome.peers.map((peer) => peer.ending)).toEqual(["reset", "reset"])
      expect(outcome.shutdownMillis).toBe(400)
    }))

  it.effect("the built-in echo has no handler to watch", () =>
    Effect.gen(function*() {
      const outcome = yield* TestKit.simulate({ scenario: exchange, seed: 1 }, timeouts)
      expect(outcome.handlers).toBeUndefined()
      expect(outcome.verified).toBe(1)
      expect(outcome.peers).toEqual([{ sent: 5, received: 5, halfClosed: "while serving", ending: "eof" }])
    }))

  it.effect("a server of the user's own that does not start, or a target that is both, is said so", () =>
    Effect.gen(function*() {
      const notStarted = yield* simulatedFailure(exchange, { serve: () => Effect.fail("no port for you") })
      expect(notStarted).toMatchObject({ reason: "NotStarted" })
      expect(notStarted.message).toBe("the server did not start: Error: no port for you")
      const both = yield* simulatedFailure(exchange, {
        handler: echo,
        serve: () => Effect.succeed({ port: 1 })
      })
      expect(both).toMatchObject({
        reason: "Unsupported",
        detail: "a target is a handler or a server of its own, not both"
      })
    }))

  it.live("a simulation-only fault asked of loopback is refused", () =>
    Effect.gen(function*() {
      const failure = yield* Effect.flip(
        TestKit.checkShutdown({ operations: [{ _tag: "Open" }, { _tag: "Descriptors", exhausted: true }] }, timeouts)
      )
      expect(failure).toMatchObject({
        reason: "Unsupported",
        detail: "only the simulation can run the server's descriptors out"
      })
    }))

  it.effect("a scenario prints as one line, and so do its operations", () =>
    Effect.sync(() => {
      const scenario = TestKit.makeScenario([
        { _tag: "Open" },
        { _tag: "Send", peer: 0, data: new Uint8Array(3) },
        { _tag: "Exchange", data: new Uint8Array(2) },
        { _tag: "HalfClose", peer: 1 },
        { _tag: "Flood", peers: 4 },
        { _tag: "Descriptors", exhausted: true },
        { _tag: "Descriptors", exhausted: false },
        { _tag: "Shutdown" },
        { _tag: "Wait", millis: 950 },
        { _tag: "ServerDefect" },
        { _tag: "ForceShutdown" }
      ])
      const line = "Open, Send(0, 3 bytes), Exchange(2 bytes), HalfClose(1), Flood(4), Descriptors(exhausted), " +
        "Descriptors(back), Shutdown, Wait(950 ms), ServerDefect, ForceShutdown"
      expect(String(scenario)).toBe(line)
      expect(TestKit.format(scenario)).toBe(line)
    }))
})

describe("the forced and crash paths", () => {
  // Buffers of 1 KiB: of an echo of 10,000 bytes, the kernels hold 2 KiB, the server's own buffer the rest.
  const network = { receiveBuffer: 1024, sendBuffer: 1024 }
  const data = new Uint8Array(10_000).map((_, i) => i % 251)
  /** Peer 0 stranded (its input read whole, its echo held in the server's buffer), peer 1 mid-conversation. */
  const held: ReadonlyArray<TestKit.Operation> = [
    { _tag: "Open" },
    { _tag: "Stall", peer: 0 },
    { _tag: "Send", peer: 0, data },
    { _tag: "HalfClose", peer: 0 },
    { _tag: "Open" },
    { _tag: "Send", peer: 1, data: data.subarray(0, 100) }
  ]
  const targets = [{}, { handler: echo, protocol: TestKit.echo }]

  it.effect("a forced stop resets every connection not whole at once: never an echo cut short behind a FIN", () =>
    Effect.gen(function*() {
      for (const target of targets) {
        for (const then of [[{ _tag: "ForceShutdown" }], [{ _tag: "Shutdown" }, { _tag: "ForceShutdown" }]] as const) {
          const outcome = yield* TestKit.simulate(
            { scenario: { operations: [...held, ...then] }, seed: 1, network },
            { ...timeouts, ...target }
          )
          // The stranded peer got what the kernels held, then the reset; the other one, what of its
          // echo had come, then the reset.
          expect(outcome.peers[0]).toMatchObject({ sent: 10_000, ending: "reset" })
          expect(outcome.peers[0]!.received).toBeLessThan(10_000)
          expect(outcome.peers[1]).toMatchObject({ sent: 100, ending: "reset" })
        }
      }
    }))

  it.effect("while it serves, a forced stop is the shutdown's start, and it waits for no deadline", () =>
    Effect.gen(function*() {
      for (const target of targets) {
        const outcome = yield* TestKit.simulate(
          { scenario: { operations: [...held, { _tag: "ForceShutdown" }] }, seed: 1, network },
          { ...timeouts, ...target }
        )
        expect(outcome.shutdownMillis).toBe(0)
      }
    }))

  it.effect("a peer that reads sees the reset at the forced stop, not at the deadline", () =>
    Effect.gen(function*() {
      // Forced at 10 ms into the shutdown: peer 1, still talking, is reset then (and so allowed),
      // or the run fails as late (at the deadline) or early (a reset before it, unforced).
      const outcome = yield* TestKit.simulate(
        {
          scenario: {
            operations: [...held, { _tag: "Shutdown" }, { _tag: "Wait", millis: 10 }, { _tag: "ForceShutdown" }]
          },
          seed: 1,
          network
        },
        timeouts
      )
      expect(outcome.peers[1]!.ending).toBe("reset")
    }))

  /** A server of the user's own, on `Server.make`, that records how its scope was closed. */
  const recorded = () => {
    const exits: Array<Exit.Exit<unknown, unknown>> = []
    const serve = (options: Server.Options) =>
      Effect.andThen(
        Effect.addFinalizer((exit) => Effect.sync(() => exits.push(exit))),
        Effect.map(Server.make(options), (server) => ({ port: server.address.port }))
      )
    return { exits, target: { serve, protocol: TestKit.echo } }
  }

  it.effect("a defect in the server's fiber closes its scope with the defect, and shuts down as gracefully as asked", () =>
    Effect.gen(function*() {
      const { exits, target } = recorded()
      const outcome = yield* TestKit.simulate(
        {
          scenario: {
            operations: [
              { _tag: "Open" },
              { _tag: "Send", peer: 0, data },
              { _tag: "Open" },
              { _tag: "ServerDefect" },
              { _tag: "HalfClose", peer: 0 }
            ]
          },
          seed: 1
        },
        { ...timeouts, ...target }
      )
      // Peer 0 half-closed during the drain: its whole echo. Peer 1, silent: reset at the deadline.
      expect(outcome.peers).toEqual([
        { sent: 10_000, received: 10_000, halfClosed: "while draining", ending: "eof" },
        { sent: 0, received: 0, halfClosed: "no", ending: "reset" }
      ])
      expect(outcome.shutdownMillis).toBe(400)
      expect(exits).toHaveLength(1)
      const exit = exits[0]!
      expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toMatchObject({
        message: "a defect in the fiber that holds the server (the run's ServerDefect)"
      })
      // Asked for, the same shutdown closes the scope with success.
      const asked = recorded()
      yield* TestKit.simulate(
        { scenario: { operations: [{ _tag: "Open" }, { _tag: "Shutdown" }] }, seed: 1 },
        { ...timeouts, ...asked.target }
      )
      expect(asked.exits).toEqual([Exit.void])
    }))

  it.effect("a server whose release does not wait for its drain when its fiber dies is caught by ServerDefect alone", () =>
    Effect.gen(function*() {
      // On a failure, its release lets the shutdown go on in the background and returns: in a real
      // process, which exits once the fiber is done, the drain is cut short.
      const hasty = {
        serve: (options: Server.Options) =>
          Effect.gen(function*() {
            const inner = yield* Scope.make()
            yield* Effect.addFinalizer((exit) =>
              Exit.isFailure(exit)
                ? Effect.asVoid(forkDetach(Scope.close(inner, exit)))
                : Scope.close(inner, exit)
            )
            const server = yield* extendScope(Server.make(options), inner)
            return { port: server.address.port }
          }),
        protocol: TestKit.echo
      }
      const asked = yield* TestKit.simulate(
        { scenario: { operations: [{ _tag: "Open" }, { _tag: "Shutdown" }] }, seed: 1 },
        { ...timeouts, ...hasty }
      )
      expect(asked.peers[0]!.ending).toBe("reset")
      const failure = yield* simulatedFailure({ operations: [{ _tag: "Open" }, { _tag: "ServerDefect" }] }, hasty)
      expect(failure).toMatchObject({ reason: "Leak", detail: "1 server socket(s) still open when shutdown returned" })
    }))

  it.effect("the generator plays them only when asked: crashes off generates what no option does", () =>
    Effect.sync(() => {
      const tags = (crashes: boolean) =>
        new Set(
          fc.sample(TestKit.scenario({ ...timeouts, crashes }), { seed: 42, numRuns: 200 }).flatMap((scenario) =>
            scenario.operations.map((op) => op._tag)
          )
        )
      expect(tags(false).has("ForceShutdown")).toBe(false)
      expect(tags(false).has("ServerDefect")).toBe(false)
      expect(tags(true).has("ForceShutdown")).toBe(true)
      expect(tags(true).has("ServerDefect")).toBe(true)
      const plain = fc.sample(TestKit.scenario(timeouts), { seed: 42, numRuns: 20 }).map(TestKit.format)
      expect(
        fc.sample(TestKit.scenario({ ...timeouts, crashes: false }), { seed: 42, numRuns: 20 }).map(TestKit.format)
      )
        .toEqual(plain)
    }))

  it("the model: a forced stop applies while serving or draining and stops everything; a defect begins the shutdown", () => {
    const model = TestKit.initialModel(900)
    expect(TestKit.applies(model, { _tag: "ServerDefect" })).toBe(true)
    expect(TestKit.applies(model, { _tag: "ForceShutdown" })).toBe(true)
    TestKit.step(model, { _tag: "ServerDefect" })
    expect(model.phase).toBe("draining")
    expect(TestKit.applies(model, { _tag: "ServerDefect" })).toBe(false)
    expect(TestKit.applies(model, { _tag: "ForceShutdown" })).toBe(true)
    TestKit.step(model, { _tag: "ForceShutdown" })
    expect(model.phase).toBe("stopped")
    expect(TestKit.applies(model, { _tag: "ForceShutdown" })).toBe(false)
    expect(TestKit.applies(model, { _tag: "ServerDefect" })).toBe(false)
  })
})

/** `simulate` in this process: its exit status, and what it wrote. */
const simulate = (...argv: ReadonlyArray<string>) => {
  const out: Array<string> = []
  const err: Array<string> = []
  return Effect.map(
    Command.run(argv, {
      invokedAs: "effect-tcp-echo simulate",
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      cwd: root
    }),
    (status) => ({ status, out, err })
  )
}

describe("simulate on the command line", () => {
  it.effect("a bad argument gets one line naming it, and status 2", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[ReadonlyArray<string>, string]> = [
        [["--seed", "9999999999"], `--seed must be an integer from -2147483648 to 2147483647, not "9999999999"`],
        [["--runs", "0"], `--runs must be an integer from 1 to 10000000, not "0"`],
        [["--runs", "many"], `--runs must be an integer from 1 to 10000000, not "many"`],
        [["--strategy", "dfs"], `--strategy must be random or pct, not "dfs"`],
        [["--depth", "3"], "--depth and --steps go with --strategy pct"],
        [["--strategy", "pct", "--steps", "0"], `--steps must be an integer from 1 to 1000000000, not "0"`],
        [["--path", "1:2"], "--path needs the --seed it came with"],
        [["--seed", "1", "--path", "1;2"], `--path must look like 3:1:0, not "1;2"`],
        [
          ["--handler", "test/fixtures/handler.mjs#notAHandler"],
          "--handler test/fixtures/handler.mjs#notAHandler: " +
          "its export notAHandler is neither a Server.Handler nor { handler | serve, protocol }"
        ],
        [
          ["--handler", "test/fixtures/handler.mjs#missing"],
          "--handler test/fixtures/handler.mjs#missing: " +
          "the module has no export missing"
        ]
      ]
      for (const [argv, message] of cases) {
        const { err, out, status } = yield* simulate(...argv)
        expect([status, out, err]).toEqual([2, [], [`effect-tcp-echo simulate: ${message} (--help for usage)`]])
      }
      const unknown = yield* simulate("--bogus")
      expect(unknown.err).toEqual([expect.stringMatching(/^effect-tcp-echo simulate: Unknown option '--bogus'/)])
      const missing = yield* simulate("--handler", "nowhere.js")
      expect(missing.status).toBe(2)
      expect(missing.err).toEqual([
        expect.stringMatching(/^effect-tcp-echo simulate: cannot load --handler nowhere\.js: /)
      ])
    }))

  it.effect("--help prints the usage, status 0", () =>
    Effect.gen(function*() {
      const { out, status } = yield* simulate("--help")
      expect(status).toBe(0)
      expect(out.join("\n")).toMatch(/^usage: simulate \[--runs N\] \[--seed S\]/)
    }))

  it.effect("a property that holds prints one JSON line of counts, status 0", () =>
    Effect.gen(function*() {
      const { out, status } = yield* simulate("--runs", "20", "--seed", "3")
      expect(status).toBe(0)
      expect(out).toHaveLength(1)
      expect(JSON.parse(out[0]!)).toMatchObject({ runs: 20, failures: 0, seed: 3, strategy: "random" })
    }))

  it.effect("a failure prints the failing run's trace and its replay, which prints the same trace", () =>
    Effect.gen(function*() {
      const found = yield* simulate("--runs", "500", "--seed", "1", "--handler", "examples/forking-echo.ts")
      expect(found.status).toBe(1)
      const line = JSON.parse(found.out[0]!) as Record<string, unknown>
      expect(line).toMatchObject({
        failures: 1,
        seed: 1,
        reason: "CutOffThenFin",
        trace: expect.stringMatching(/^[0-9a-f]{8}$/),
        scenario: expect.stringMatching(/^Open, /),
        replay: expect.stringMatching(
          /^effect-tcp-echo simulate --seed 1 --path [\d:]+ --handler examples\/forking-echo\.ts$/
        )
      })
      const replayed = yield* simulate(...(line.replay as string).split(" ").slice(2))
      expect(replayed.status).toBe(1)
      expect(JSON.parse(replayed.out[0]!)).toMatchObject({ runs: 1, trace: line.trace, scenario: line.scenario })
    }))

  it.effect("the replay keeps the strategy and the timeouts the run had", () =>
    Effect.gen(function*() {
      const found = yield* simulate(
        "--seed",
        "2",
        "--handler",
        "examples/forking-echo.ts",
        "--strategy",
        "pct",
        "--depth",
        "2",
        "--steps",
        "500",
        "--shutdown-timeout",
        "300",
        "--cleanup-timeout",
        "200",
        "--crashes"
      )
      const line = JSON.parse(found.out[0]!) as Record<string, unknown>
      expect(line.strategy).toBe("pct(depth 2, 500 steps)")
      expect(line.replay).toMatch(
        / --strategy pct --depth 2 --steps 500 --shutdown-timeout 300 --cleanup-timeout 200 --crashes$/
      )
      const replayed = yield* simulate(...(line.replay as string).split(" ").slice(2))
      expect(JSON.parse(replayed.out[0]!)).toMatchObject({ trace: line.trace })
    }))
})

describe("simulate as the installed command runs it", () => {
  const bin = (...argv: ReadonlyArray<string>) => {
    const result = spawnSync(process.execPath, [installed, "simulate", ...argv], {
      cwd: root,
      encoding: "utf8",
      timeout: 120_000
    })
    return { status: result.status, stdout: result.stdout, stderr: result.stderr }
  }

  it("a handler module in plain JavaScript, the test kit's own model beside it: the property holds", () => {
    const { status, stderr, stdout } = bin("--handler", "test/fixtures/handler.mjs", "--runs", "30", "--seed", "2")
    expect(stderr).toBe("")
    expect(status).toBe(0)
    expect(JSON.parse(stdout)).toMatchObject({ runs: 30, failures: 0, seed: 2 })
  })

  it("its broken export is found, exit 1, and the replay it prints gives the same trace", () => {
    const found = bin("--handler", "test/fixtures/handler.mjs#unawaited", "--runs", "500", "--seed", "1")
    expect(found.status).toBe(1)
    const line = JSON.parse(found.stdout) as Record<string, string>
    expect(line.replay).toMatch(
      /^effect-tcp-echo simulate --seed 1 --path [\d:]+ --handler test\/fixtures\/handler\.mjs#unawaited$/
    )
    const replayed = bin(...line.replay!.split(" ").slice(2))
    expect(replayed.status).toBe(1)
    expect(JSON.parse(replayed.stdout)).toMatchObject({ trace: line.trace })
  })

  it("a bad argument: one line on stderr, exit 2", () => {
    const { status, stderr, stdout } = bin("--seed", "9999999999")
    expect([status, stdout]).toEqual([2, ""])
    expect(stderr).toBe(
      `effect-tcp-echo simulate: --seed must be an integer from -2147483648 to 2147483647, not "9999999999" (--help for usage)\n`
    )
  })
})
