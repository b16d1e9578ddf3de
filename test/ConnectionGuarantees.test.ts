/**
 * What a connection guarantees, one behaviour at a time: its typed errors, read-side backpressure
 * at the high-water mark, a write that waits for 'drain', an end that is idempotent, the echo and
 * how it stops, the idle timeout, and what its owner can do (discard input, put bytes back, tell
 * when both FINs are done). Most run on the simulated network: deterministic, on virtual time, and
 * a run that would wait forever fails at once as stuck.
 */
import { defects, firstFailure } from "#line/cause"
import { callback, poll } from "#line/runtime"
import { type Buffers, buffersArray, matchRead, type Read, readBuffers } from "#line/types"
import { fork } from "#test-line/guarantees"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Clock, Deferred, Duration, Effect, Exit, Fiber, Option } from "effect"
import type { Scope } from "effect"
import * as Connection from "../src/Connection.js"
import { Listener, TestKit } from "../src/index.js"
import * as Driven from "../src/internal/connection.js"
import type * as Net from "../src/internal/sim/net.js"
import { Simulation } from "../src/internal/sim/run.js"
import * as Transport from "../src/internal/transport.js"
import { eventually, readToEnd, settled } from "./utils/peers.js"

const bytes = (text: string) => new Uint8Array(Buffer.from(text))

const pattern = (n: number, seed = 0) => {
  const data = Buffer.alloc(n)
  for (let i = 0; i < n; i++) data[i] = (i * 31 + seed) & 0xff
  return data
}

/** Plays `program` in a simulated world of its own: same seed, same run. */
const simulated = <A, E>(program: Effect.Effect<A, E, Scope.Scope>, net?: Partial<Net.NetOptions>): A =>
  new Simulation({ seed: 7, ...(net === undefined ? {} : { net }) }).runSync(Effect.scoped(program))

/** What an owner heard from its connection. */
const recordingOwner = () => {
  const heard = { received: 0, sent: 0, idle: 0, echoed: [] as Array<Connection.ConnectionError | undefined> }
  const owner: Driven.Owner & Driven.EchoDone = {
    received: (n) => {
      heard.received += n
    },
    sent: (n) => {
      heard.sent += n
    },
    idle: () => {
      heard.idle++
    },
    echoed: (error) => {
      heard.echoed.push(error)
    }
  }
  return { heard, owner }
}

interface Setup {
  readonly options?: Connection.Options
  readonly owner?: Driven.Owner
  readonly verifyEnd?: (socket: Listener.Socket) => Driven.VerifyEnd
}

/** A listener, a test peer connected to it, and the accepted socket as a connection. */
const accepted = (setup: Setup = {}) =>
  Effect.gen(function*() {
    const listener = yield* Listener.make()
    const peer = yield* TestKit.connect(listener.address.port)
    const socket = yield* listener.accept
    const connection = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Driven.drive(
          socket,
          setup.options,
          setup.owner,
          undefined,
          setup.verifyEnd === undefined ? undefined : setup.verifyEnd(socket)
        )
      ),
      (connection) => connection.close("close")
    )
    return { peer, socket, connection }
  })

const stats = (connection: Connection.Connection) => connection.stats

/** Waits until the socket has emitted 'close' (in the world, posted events run before time moves). */
const closed = (socket: Listener.Socket) =>
  Effect.andThen(eventually(Effect.sync(() => socket.destroyed), (destroyed) => destroyed), Effect.sleep("10 millis"))

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const failure = firstFailure(exit.cause)
  if (Option.isNone(failure)) throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.value
}

/** How a read ended: with buffers, at the end of input, or with an error (a defect fails the test). */
type ReadOutcome<E> =
  | { readonly _tag: "Buffers"; readonly buffers: Buffers }
  | { readonly _tag: "End" }
  | { readonly _tag: "Failure"; readonly error: E }

// Each line signals the end of input its own way (Effect 3: a failure with None; Effect 4:
// Cause.Done): matchRead tells it apart, and the error is read back from the exit.
const outcomeOf = <E>(read: Read<E>): Effect.Effect<ReadOutcome<E>> =>
  Effect.map(
    Effect.exit(matchRead(read, {
      onBuffers: (buffers) => Effect.succeed<ReadOutcome<E>>({ _tag: "Buffers", buffers }),
      onEnd: () => Effect.succeed<ReadOutcome<E>>({ _tag: "End" }),
      onFailure: (error: E) => Effect.fail(error)
    })),
    (exit): ReadOutcome<E> => Exit.isSuccess(exit) ? exit.value : { _tag: "Failure", error: failureOf(exit) }
  )

/** How a read ended, by name: "Buffers", "End" or "Failure". */
const ending = <E>(read: Read<E>) => Effect.map(outcomeOf(read), (outcome) => outcome._tag)

/** The error a read failed with; buffers or the end of input fail the test. */
const readFailure = <E>(read: Read<E>): Effect.Effect<E> =>
  Effect.map(outcomeOf(read), (outcome) => {
    if (outcome._tag !== "Failure") throw new Error(`expected an error, got ${outcome._tag}`)
    return outcome.error
  })

const concat = (buffers: Buffers) => Buffer.concat(buffersArray(buffers))

describe("ConnectionError says what happened, and to whom", () => {
  const peer = "127.0.0.1:4242"

  it("each reason has its own message naming the peer", () => {
    expect(new Connection.ConnectionError({ reason: "Reset", peer }).message).toBe(
      "127.0.0.1:4242 reset the connection"
    )
    expect(new Connection.ConnectionError({ reason: "BrokenPipe", peer, code: "EPIPE" }).message).toBe(
      "127.0.0.1:4242 is gone: write on a closed connection"
    )
    expect(new Connection.ConnectionError({ reason: "Timeout", peer }).message).toBe("127.0.0.1:4242 timed out (idle)")
    expect(new Connection.ConnectionError({ reason: "Timeout", peer, code: "ETIMEDOUT" }).message).toBe(
      "127.0.0.1:4242 timed out (ETIMEDOUT)"
    )
  })

  it("an unknown failure names its errno code, or else its cause", () => {
    const cause = new Error("boom")
    expect(new Connection.ConnectionError({ reason: "Unknown", peer, code: "EHOSTUNREACH", cause }).message).toBe(
      "connection with 127.0.0.1:4242 failed: EHOSTUNREACH"
    )
    expect(new Connection.ConnectionError({ reason: "Unknown", peer, cause }).message).toBe(
      "connection with 127.0.0.1:4242 failed: Error: boom"
    )
  })
})

describe("a socket has one owner", () => {
  it.live("making a second connection of the same socket is a defect that says so", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      yield* TestKit.connect(listener.address.port)
      const socket = yield* listener.accept
      yield* Connection.make(socket)
      const exit = yield* Effect.exit(Connection.make(socket))
      expect(Exit.isFailure(exit) && defects(exit.cause).length > 0).toBe(true)
      if (Exit.isFailure(exit)) {
        expect(Cause.pretty(exit.cause)).toContain("Connection.make: this socket already belongs to a connection")
      }
    })))

  it.live("a connection of a socket whose peer is already gone names it as such", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      yield* TestKit.connect(listener.address.port)
      const socket = yield* listener.accept
      socket.destroy()
      yield* callback<void>((resume) => {
        if (socket.destroyed && socket.remoteAddress === undefined) return resume(Effect.void)
        socket.once("close", () => resume(Effect.void))
      })
      const connection = yield* Connection.make(socket)
      expect(connection.peer).toBe("a peer gone before its address was read")
    })))
})

describe("the read side is backpressured", () => {
  it("a read interrupted while it waits leaves the connection usable: the next read gets the bytes", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      for (let i = 0; i < 3; i++) {
        expect(Option.isNone(yield* Effect.timeoutOption(connection.read, "100 millis"))).toBe(true)
      }
      const reading = yield* fork(connection.read)
      const waiting = yield* fork(Effect.timeoutOption(connection.read, "100 millis"))
      expect(Option.isNone(yield* Fiber.join(waiting))).toBe(true)
      yield* peer.send(bytes("late"))
      expect(concat(yield* Fiber.join(reading)).toString()).toBe("late")
    })))

  it("a consumer that stops pulling stops reading at the high-water mark, and counts what it holds", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted({ options: { highWaterMark: 1 } })
      const sent = pattern(256 * 1024)
      yield* peer.send(sent)
      const first = concat(yield* connection.read)
      // Nothing pulls now: at most one more read arrives before the socket is paused.
      const held = yield* settled(stats(connection))
      expect(held.bytesIn).toBeLessThan(sent.length)
      expect(held.buffered).toBe(held.bytesIn - first.length)
      expect(held.buffered).toBeGreaterThan(0)
      // Pulling again lets it flow, in order.
      const rest: Array<Buffer> = [first]
      let total = first.length
      for (let i = 0; i < 10_000 && total < sent.length; i++) {
        const got = concat(yield* connection.read)
        rest.push(got)
        total += got.length
      }
      expect(Buffer.concat(rest).equals(sent)).toBe(true)
    })))

  it("writing while the read side is paused at the high-water mark does not resume reading", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted({ options: { highWaterMark: 1 } })
      yield* peer.startReading
      yield* peer.send(pattern(256 * 1024))
      yield* connection.read
      const before = yield* settled(stats(connection))
      // Each of these fills Node's buffer (16 KiB): the write waits for 'drain' every time.
      const answer = pattern(64 * 1024, 3)
      for (let i = 0; i < 8; i++) yield* connection.write(answer)
      yield* eventually(Effect.sync(() => peer.received().length), (n) => n === 8 * answer.length)
      const after = yield* settled(stats(connection))
      expect(after.bytesIn).toBe(before.bytesIn)
      expect(after.bytesOut).toBe(8 * answer.length)
    })))

  it("an end of input that the kernel says was a reset fails the read as Reset, not as a clean end", () =>
    simulated(Effect.gen(function*() {
      const verifyEnd = (socket: Listener.Socket): Driven.VerifyEnd => ({
        ends: { localAddress: "127.0.0.1", localPort: 1, remoteAddress: "127.0.0.1", remotePort: 2 },
        transport: { ...Transport.node, endWasReset: (s) => s === socket }
      })
      const { connection, peer } = yield* accepted({ verifyEnd })
      yield* peer.halfClose
      const error = yield* readFailure(connection.read)
      expect(error.reason).toBe("Reset")
      expect(error.code).toBe("ECONNRESET")
      expect(Driven.raisedBy(error)).toBe(connection)
    })))

  it("an end of input the kernel confirms as a FIN is a clean end", () =>
    simulated(Effect.gen(function*() {
      const verifyEnd = (): Driven.VerifyEnd => ({
        ends: { localAddress: "127.0.0.1", localPort: 1, remoteAddress: "127.0.0.1", remotePort: 2 },
        transport: { ...Transport.node, endWasReset: () => false }
      })
      const { connection, peer } = yield* accepted({ verifyEnd })
      yield* peer.halfClose
      expect(yield* ending(connection.read)).toBe("End")
    })))
})

describe("input read before the socket closed is still read", () => {
  it("both FINs close the socket while input waits unread: read and run still get every byte, then the end", () =>
    simulated(Effect.gen(function*() {
      for (const take of ["read", "run"] as const) {
        const { connection, peer } = yield* accepted()
        yield* peer.startReading
        // A first read sets the socket flowing, as a client's is from the start.
        yield* peer.send(bytes("x"))
        expect(concat(yield* connection.read).toString()).toBe("x")
        // Our FIN first, then the peer's input and its FIN: the socket closes with that input held.
        yield* connection.end
        const sent = pattern(40 * 1024, take === "read" ? 1 : 2)
        yield* peer.send(sent)
        yield* peer.halfClose
        yield* settled(stats(connection))
        const got: Array<Buffer> = []
        if (take === "read") {
          for (let i = 0; i < 1_000; i++) {
            const chunk = yield* Effect.option(connection.read)
            if (Option.isNone(chunk)) break
            got.push(concat(chunk.value))
          }
        } else {
          yield* connection.run((data) => {
            got.push(Buffer.from(data))
          })
        }
        expect(Buffer.concat(got).equals(sent)).toBe(true)
      }
    })))
})

describe("run serves a protocol buffer by buffer", () => {
  it("calls f with every buffer, in order, and succeeds at the peer's half-close after the last one", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      const seen: Array<Buffer> = []
      const running = yield* fork(connection.run((data) => Effect.sync(() => seen.push(Buffer.from(data)))))
      const sent = pattern(300 * 1024)
      yield* peer.send(sent)
      yield* peer.halfClose
      expect(Exit.isSuccess(yield* Fiber.await(running))).toBe(true)
      expect(Buffer.concat(seen).equals(sent)).toBe(true)
    })))

  it("hands over the next buffer only once the effect for this one completed, reading no further meanwhile", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted({ options: { highWaterMark: 1 } })
      const release = yield* Deferred.make<void>()
      const seen: Array<Buffer> = []
      const running = yield* fork(
        connection.run((data) =>
          Effect.andThen(Effect.sync(() => seen.push(Buffer.from(data))), Deferred.await(release))
        )
      )
      const sent = pattern(256 * 1024)
      yield* peer.send(sent)
      yield* peer.halfClose
      const held = yield* settled(stats(connection))
      expect(seen.length).toBe(1)
      expect(held.bytesIn).toBeLessThan(sent.length)
      yield* Deferred.succeed(release, void 0)
      expect(Exit.isSuccess(yield* Fiber.await(running))).toBe(true)
      expect(Buffer.concat(seen).equals(sent)).toBe(true)
    })))

  it("a plain function that returns nothing is called for every buffer, and run goes on at once", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      let total = 0
      const running = yield* fork(connection.run((data) => {
        total += data.length
      }))
      yield* peer.send(pattern(100 * 1024))
      yield* peer.halfClose
      expect(Exit.isSuccess(yield* Fiber.await(running))).toBe(true)
      expect(total).toBe(100 * 1024)
    })))

  it("fails with f's own error, handing over no further buffer, or with the connection's when the peer resets", () =>
    simulated(Effect.gen(function*() {
      const first = yield* accepted()
      let calls = 0
      const failing = yield* fork(first.connection.run(() => {
        calls++
        return Effect.fail("bad input" as const)
      }))
      yield* first.peer.send(bytes("one"))
      expect(failureOf(yield* Fiber.await(failing))).toBe("bad input")
      yield* first.peer.send(bytes("two"))
      yield* Effect.sleep("100 millis")
      expect(calls).toBe(1)

      const second = yield* accepted()
      const running = yield* fork(second.connection.run(() => Effect.void))
      yield* second.peer.send(bytes("x"))
      yield* second.peer.reset
      const error = failureOf(yield* Fiber.await(running))
      expect(error instanceof Connection.ConnectionError && error.reason).toBe("Reset")
    })))

  it("with untilDrain it returns at the drain notice, between two buffers; without, it goes on", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      const seen: Array<string> = []
      const untilDrain = yield* fork(connection.run((data) => {
        seen.push(Buffer.from(data).toString())
      }, { untilDrain: true }))
      const other = yield* accepted()
      const regardless = yield* fork(other.connection.run(() => Effect.void))
      yield* peer.send(bytes("before"))
      yield* eventually(Effect.sync(() => seen.length), (n) => n === 1)
      connection.notifyDrain()
      other.connection.notifyDrain()
      expect(Exit.isSuccess(yield* Fiber.await(untilDrain))).toBe(true)
      expect(seen).toEqual(["before"])
      yield* Effect.sleep("100 millis")
      expect(poll(regardless)).toBeUndefined()
      yield* other.peer.halfClose
      expect(Exit.isSuccess(yield* Fiber.await(regardless))).toBe(true)
    })))

  it("waits given up while nothing arrives do not pile up, and the next read still gets the bytes", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      for (let i = 0; i < 100; i++) yield* Effect.timeoutOption(connection.read, "1 millis")
      for (let i = 0; i < 100; i++) yield* Effect.timeoutOption(connection.run(() => Effect.void), "1 millis")
      const parked = (connection as unknown as { readonly readers: ReadonlyArray<unknown> }).readers
      expect(parked.length).toBeLessThan(17)
      yield* peer.send(bytes("late"))
      expect(concat(yield* connection.read).toString()).toBe("late")
    })))
})

describe("a write waits for 'drain'", () => {
  it("a write to a peer that does not read stays pending, and completes with every byte once it reads", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      const big = pattern(1024 * 1024)
      const writing = yield* fork(connection.write(big))
      yield* Effect.sleep("1 second")
      expect(poll(writing)).toBeUndefined()
      // What the process holds is bounded by what did not fit in the kernel.
      expect((yield* connection.stats).buffered).toBeGreaterThan(0)
      yield* peer.startReading
      yield* Fiber.join(writing)
      yield* connection.end
      expect(yield* peer.readToEnd).toBe("eof")
      expect(peer.received().equals(big)).toBe(true)
    })))

  it("writeAll waits for 'drain' between buffers, and writes each buffer once, in order", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      const parts = [pattern(300 * 1024, 1), bytes("middle"), pattern(40 * 1024, 2), bytes("tail")]
      const writing = yield* fork(connection.writeAll(readBuffers(parts)))
      yield* Effect.sleep("1 second")
      expect(poll(writing)).toBeUndefined()
      yield* peer.startReading
      yield* Fiber.join(writing)
      yield* connection.end
      expect(yield* peer.readToEnd).toBe("eof")
      expect(peer.received().equals(Buffer.concat(parts))).toBe(true)
      expect((yield* connection.stats).bytesOut).toBe(Buffer.concat(parts).length)
    })))

  it("a writeAll whose last buffer fills Node's buffer still waits for 'drain'", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      const parts = [bytes("head"), pattern(300 * 1024, 4)]
      const writing = yield* fork(connection.writeAll(readBuffers(parts)))
      yield* Effect.sleep("1 second")
      expect(poll(writing)).toBeUndefined()
      yield* peer.startReading
      yield* Fiber.join(writing)
      yield* connection.end
      expect(yield* peer.readToEnd).toBe("eof")
      expect(peer.received().equals(Buffer.concat(parts))).toBe(true)
    })))

  it("a write waiting for 'drain' fails with Reset when the peer resets, and so does every later call", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer, socket } = yield* accepted()
      // Reading too, so that the reset is seen.
      yield* fork(connection.read)
      const writing = yield* fork(connection.write(pattern(1024 * 1024)))
      yield* Effect.sleep("1 second")
      expect(poll(writing)).toBeUndefined()
      yield* peer.reset
      const error = failureOf(yield* Fiber.await(writing))
      expect(error.reason).toBe("Reset")
      expect(Driven.raisedBy(error)).toBe(connection)
      // Once the socket is closed, the connection still tells why it ended.
      yield* closed(socket)
      const out = (yield* connection.stats).bytesOut
      const again = failureOf(yield* Effect.exit(connection.write(bytes("more"))))
      expect(again.reason).toBe("Reset")
      expect((yield* connection.stats).bytesOut).toBe(out)
      expect(failureOf(yield* Effect.exit(connection.writeAll(readBuffers([bytes("more")])))).reason).toBe("Reset")
      expect((yield* readFailure(connection.read)).reason).toBe("Reset")
      expect(failureOf(yield* Effect.exit(connection.end)).reason).toBe("Reset")
    })))
})

describe("writing after the end fails instead of vanishing", () => {
  it("a write after our own end fails as BrokenPipe (write after end), and the peer gets no extra byte", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      yield* peer.startReading
      yield* connection.write(bytes("answer"))
      yield* connection.end
      const error = failureOf(yield* Effect.exit(connection.write(bytes("late"))))
      expect(error.reason).toBe("BrokenPipe")
      expect(error.code).toBe("ERR_STREAM_WRITE_AFTER_END")
      expect(error.message).toBe(`${connection.peer} is gone: write on a closed connection`)
      expect(Driven.raisedBy(error)).toBe(connection)
      expect(failureOf(yield* Effect.exit(connection.writeAll(readBuffers([bytes("late")])))).reason).toBe("BrokenPipe")
      expect(yield* peer.readToEnd).toBe("eof")
      expect(peer.received().toString()).toBe("answer")
      expect((yield* connection.stats).bytesOut).toBe(6)
    })))

  it("a write right after the socket was destroyed fails as BrokenPipe, before its 'close'", () =>
    simulated(Effect.gen(function*() {
      const { connection, socket } = yield* accepted()
      const exit = yield* Effect.sync(() => {
        socket.destroy()
        return Effect.runSyncExit(connection.write(bytes("late")))
      })
      const error = failureOf(exit)
      expect(error.reason).toBe("BrokenPipe")
      expect(error.code).toBe("ERR_STREAM_WRITE_AFTER_END")
      expect((yield* connection.stats).bytesOut).toBe(0)
    })))

  it("after both FINs the socket closes: writes fail as BrokenPipe (closed), end and read stay clean", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer, socket } = yield* accepted()
      yield* peer.startReading
      yield* peer.send(bytes("ping"))
      yield* peer.halfClose
      expect(concat(yield* connection.read).toString()).toBe("ping")
      expect(yield* ending(connection.read)).toBe("End")
      yield* connection.write(bytes("pong"))
      yield* connection.end
      yield* closed(socket)
      const error = failureOf(yield* Effect.exit(connection.write(bytes("late"))))
      expect(error.reason).toBe("BrokenPipe")
      expect(error.code).toBe("ECLOSED")
      expect(error.peer).toBe(connection.peer)
      expect(error.message).toBe(`${connection.peer} is gone: write on a closed connection`)
      // end is idempotent, even once the socket is closed; the input ended cleanly.
      yield* connection.end
      expect(yield* ending(connection.read)).toBe("End")
      expect(yield* peer.readToEnd).toBe("eof")
      expect(peer.received().toString()).toBe("pong")
    })))
})

describe("the echo", () => {
  it("echoes what was read ahead first, then everything after, half-closes after the peer's FIN, and succeeds", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      yield* peer.startReading
      yield* peer.send(bytes("pulled"))
      expect(concat(yield* connection.read).toString()).toBe("pulled")
      yield* peer.send(bytes("ahead"))
      yield* eventually(stats(connection), (s) => s.bytesIn === 11)
      const echoing = yield* fork(connection.echo)
      yield* eventually(Effect.sync(() => peer.received().toString()), (got) => got === "ahead")
      const later = pattern(200 * 1024, 5)
      yield* peer.send(later)
      yield* peer.halfClose
      const exit = yield* Fiber.await(echoing)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(yield* peer.readToEnd).toBe("eof")
      expect(peer.received().equals(Buffer.concat([Buffer.from("ahead"), later]))).toBe(true)
      // Nothing is left for a read: the input ended.
      expect(yield* ending(connection.read)).toBe("End")
      const final = yield* connection.stats
      expect(final.bytesOut).toBe(5 + later.length)
      expect(final.buffered).toBe(0)
    })))

  it("an echo that starts with read-ahead paused at the high-water mark lets reading go on", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted({ options: { highWaterMark: 1 } })
      yield* peer.startReading
      yield* peer.send(bytes("pulled"))
      expect(concat(yield* connection.read).toString()).toBe("pulled")
      yield* peer.send(bytes("ahead"))
      yield* eventually(stats(connection), (s) => s.bytesIn === 11)
      const echoing = yield* fork(connection.echo)
      yield* peer.send(bytes(" and after"))
      yield* peer.halfClose
      yield* Fiber.join(echoing)
      expect(yield* peer.readToEnd).toBe("eof")
      expect(peer.received().toString()).toBe("ahead and after")
    })))

  it("an echo started after the peer's FIN sends back what was read ahead, then the FIN", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer, socket } = yield* accepted()
      yield* peer.startReading
      yield* peer.send(bytes("first"))
      expect(concat(yield* connection.read).toString()).toBe("first")
      yield* peer.send(bytes("rest"))
      yield* peer.halfClose
      yield* eventually(Effect.sync(() => socket.readableEnded), (ended) => ended)
      yield* connection.echo
      expect(yield* peer.readToEnd).toBe("eof")
      expect(peer.received().toString()).toBe("rest")
    })))

  it("an echo after our own end and the peer's FIN has nothing left to do", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer, socket } = yield* accepted()
      yield* peer.startReading
      yield* peer.halfClose
      expect(yield* ending(connection.read)).toBe("End")
      yield* connection.end
      yield* eventually(Effect.sync(() => socket.writableFinished), (done) => done)
      yield* connection.echo
      expect(yield* peer.readToEnd).toBe("eof")
    })))

  it("an echo to a peer that does not read stops reading once Node's buffer is full", () =>
    simulated(
      Effect.gen(function*() {
        const { connection, peer } = yield* accepted()
        const sent = pattern(512 * 1024, 6)
        yield* peer.send(sent)
        const pulled = concat(yield* connection.read)
        // Paused at the high-water mark (64 KiB) with what it read ahead.
        const ahead = yield* settled(stats(connection))
        expect(ahead.buffered).toBeGreaterThanOrEqual(16 * 1024)
        const echoing = yield* fork(connection.echo)
        const stalled = yield* settled(stats(connection))
        // Written back (and held by Node, the peer not reading), but nothing more was read.
        expect(stalled.bytesIn).toBe(ahead.bytesIn)
        expect(stalled.bytesOut).toBe(ahead.bytesIn - pulled.length)
        yield* peer.startReading
        yield* peer.halfClose
        yield* Fiber.join(echoing)
        expect(yield* peer.readToEnd).toBe("eof")
        expect(peer.received().equals(sent.subarray(pulled.length))).toBe(true)
      }),
      { sendBuffer: 1024, receiveBuffer: 1024 }
    ))

  it("interrupting the echo stops it: later bytes wait for a read", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      yield* peer.startReading
      const echoing = yield* fork(connection.echo)
      yield* peer.send(bytes("one"))
      yield* eventually(Effect.sync(() => peer.received().toString()), (got) => got === "one")
      yield* Fiber.interrupt(echoing)
      yield* peer.send(bytes("two"))
      expect(concat(yield* connection.read).toString()).toBe("two")
      yield* Effect.sleep("100 millis")
      expect(peer.received().toString()).toBe("one")
    })))

  it("echoThen echoes on Node's callbacks with no fiber, and tells its owner once, when its FIN is out", () =>
    simulated(Effect.gen(function*() {
      const { heard, owner } = recordingOwner()
      const { connection, peer } = yield* accepted({ owner })
      yield* peer.startReading
      connection.echoThen(owner)
      yield* peer.send(bytes("one"))
      yield* eventually(Effect.sync(() => peer.received().toString()), (got) => got === "one")
      expect(heard.echoed).toEqual([])
      yield* peer.send(bytes("two"))
      yield* peer.halfClose
      expect(yield* peer.readToEnd).toBe("eof")
      expect(peer.received().toString()).toBe("onetwo")
      yield* eventually(Effect.sync(() => heard.echoed.length), (n) => n > 0)
      expect(heard.echoed).toEqual([undefined])
    })))

  it("echoThen tells its owner the connection's error when the peer resets", () =>
    simulated(Effect.gen(function*() {
      const { heard, owner } = recordingOwner()
      const { connection, peer, socket } = yield* accepted({ owner })
      connection.echoThen(owner)
      yield* peer.send(bytes("hello"))
      yield* peer.reset
      yield* closed(socket)
      expect(heard.echoed.map((error) => error?.reason)).toEqual(["Reset"])
    })))

  it("an echo on a connection that already failed fails with its error and writes nothing", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer, socket } = yield* accepted()
      yield* peer.send(bytes("x"))
      expect(concat(yield* connection.read).toString()).toBe("x")
      yield* peer.send(bytes("unread"))
      yield* eventually(stats(connection), (s) => s.bytesIn === 7)
      yield* peer.reset
      yield* closed(socket)
      const error = failureOf(yield* Effect.exit(connection.echo))
      expect(error.reason).toBe("Reset")
      expect((yield* connection.stats).bytesOut).toBe(0)
    })))
})

describe("the idle timeout", () => {
  it("without an owner, an idle connection fails as Timeout and closes itself with a FIN", () =>
    simulated(Effect.gen(function*() {
      const listener = yield* Listener.make()
      const peer = yield* TestKit.connect(listener.address.port)
      const socket = yield* listener.accept
      const connection = yield* Connection.make(socket, { idleTimeout: "1 second" })
      const error = yield* readFailure(connection.read)
      expect(error.reason).toBe("Timeout")
      expect(error.message).toBe(`${connection.peer} timed out (idle)`)
      expect(yield* peer.readToEnd).toBe("eof")
    })))

  it("with an owner, the owner is told and decides: the connection stays open, refuses to end, discards nothing", () =>
    simulated(Effect.gen(function*() {
      const { heard, owner } = recordingOwner()
      const { connection, peer } = yield* accepted({ options: { idleTimeout: Duration.seconds(1) }, owner })
      yield* peer.startReading
      yield* peer.send(bytes("hi"))
      expect(concat(yield* connection.read).toString()).toBe("hi")
      const error = yield* readFailure(connection.read)
      expect(error.reason).toBe("Timeout")
      expect(heard.idle).toBe(1)
      expect(heard.received).toBe(2)
      // Failed already: discarding returns at once, without holding the connection for atMost.
      const atMost = Duration.hours(1)
      const before = yield* Clock.currentTimeMillis
      yield* connection.discardInput(atMost)
      expect((yield* Clock.currentTimeMillis) - before).toBeLessThan(Duration.toMillis(atMost))
      // No FIN after a failure: the owner decides how the connection ends.
      expect(failureOf(yield* Effect.exit(connection.end)).reason).toBe("Timeout")
      yield* Effect.sleep("100 millis")
      expect(peer.endedAt()).toBeUndefined()
      yield* connection.close("close")
      expect(yield* peer.readToEnd).toBe("eof")
    })))
})

describe("what the owner can do", () => {
  it("discardInput drops input until the peer's FIN, and a closed connection has nothing to discard", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      yield* peer.send(pattern(100 * 1024))
      yield* peer.halfClose
      yield* connection.discardInput(Duration.infinity)
      expect(yield* ending(connection.read)).toBe("End")
      expect((yield* connection.stats).buffered).toBe(0)
      // Discarding again, or after the close, returns at once.
      yield* connection.discardInput(Duration.infinity)
      yield* connection.close("close")
      yield* connection.discardInput(Duration.infinity)
    })))

  it("discardInput on a connection closed from this side returns at once", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      yield* peer.startReading
      yield* connection.close("close")
      yield* connection.discardInput(Duration.infinity)
      expect(failureOf(yield* Effect.exit(connection.write(bytes("late")))).reason).toBe("BrokenPipe")
      expect(yield* peer.readToEnd).toBe("eof")
    })))

  it("unread puts bytes back ahead of the next read and counts them as held; an empty one is nothing", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      connection.unread(new Uint8Array(0))
      connection.unread(bytes("back"))
      expect((yield* connection.stats).buffered).toBe(4)
      expect(buffersArray(yield* connection.read).map((b) => Buffer.from(b).toString())).toEqual(["back"])
      connection.unread(new Uint8Array(0))
      const reading = yield* fork(connection.read)
      yield* peer.send(bytes("next"))
      const next = buffersArray(yield* Fiber.join(reading))
      expect(next.every((b) => b.length > 0)).toBe(true)
      expect(Buffer.concat(next).toString()).toBe("next")
    })))

  it("finished holds once both FINs are done", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer } = yield* accepted()
      expect(connection.finished).toBe(false)
      yield* peer.startReading
      yield* peer.halfClose
      expect(yield* ending(connection.read)).toBe("End")
      expect(connection.finished).toBe(false)
      yield* connection.end
      expect(connection.finished).toBe(true)
    })))

  it("finished holds once our FIN is out and the peer reset the connection instead of its FIN", () =>
    simulated(Effect.gen(function*() {
      const { connection, peer, socket } = yield* accepted()
      yield* peer.startReading
      const reading = yield* fork(connection.read)
      yield* connection.end
      expect(connection.finished).toBe(false)
      yield* peer.reset
      expect((yield* readFailure(Fiber.join(reading))).reason).toBe("Reset")
      yield* closed(socket)
      expect(connection.finished).toBe(true)
    })))
})

describe("on loopback too", () => {
  it.live("an error of a connection made with Connection.make names the peer it had, after Node closed the socket", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      const peer = yield* TestKit.connect(listener.address.port)
      const connection = yield* Connection.make(yield* listener.accept)
      const name = `127.0.0.1:${peer.socket.localPort}`
      yield* peer.send(new Uint8Array([1]))
      yield* connection.read
      yield* peer.reset
      const error = yield* readFailure(connection.read)
      expect(error.reason).toBe("Reset")
      expect(error.peer).toBe(name)
    })))

  it.live("a write after our own end fails, and the peer sees exactly the answer and EOF", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make()
      const peer = yield* TestKit.connect(listener.address.port)
      const connection = yield* Connection.make(yield* listener.accept)
      yield* connection.write(bytes("answer"))
      yield* connection.end
      expect(failureOf(yield* Effect.exit(connection.write(bytes("late")))).code).toBe("ERR_STREAM_WRITE_AFTER_END")
      const end = yield* readToEnd(peer.socket)
      expect(end.data.toString()).toBe("answer")
      expect(end.error).toBeUndefined()
    })))
})
