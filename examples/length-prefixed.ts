/**
 * A length-prefixed request/response protocol on the server's primitives, with its model for the
 * test kit. A request is a frame: a 4-byte big-endian length, then that many bytes; its answer is
 * a frame of the same length with the bytes reversed, streamed as a slow backend would give it:
 * the header, then the body in pieces of at most 1 KiB, a millisecond apart, each write waiting
 * for room as backpressure asks. A frame longer than 64 KiB is the peer's fault (`FrameTooLarge`): the connection ends
 * there. At the peer's half-close a partial last frame is dropped; at the drain notice the
 * handler ends after the frames it has answered, so that a peer gets whole answers, then a FIN.
 *
 * `raceDrain` is the bug many loops have: the whole loop raced against the drain notice, which
 * interrupts it wherever it waits, in the middle of an answer too (a write waiting for room); the
 * peer then gets part of an answer, then a FIN.
 *
 *   npm run simulate -- --handler examples/length-prefixed.ts
 *   npm run simulate -- --handler examples/length-prefixed.ts#raceDrain
 *
 * Run: npx tsx examples/length-prefixed.ts   (sends three frames and prints the answers)
 */
import { Data, Effect, Stream } from "effect"
import fc from "fast-check"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Client, Server } from "../src/index.js"
import type { Connection, TestKit } from "../src/index.js"

const maxFrame = 64 * 1024

/** A peer sent a frame longer than the protocol allows: its doing, not a bug. */
class FrameTooLarge extends Data.TaggedError("FrameTooLarge")<{ readonly length: number }> {
  readonly [Server.PeerFault] = "FrameTooLarge"
}

const header = (length: number) => {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32BE(length)
  return bytes
}

const reversed = (bytes: Uint8Array) => Buffer.from(bytes).reverse()

/**
 * The bytes received and not answered yet, kept as they came: joined only once a whole frame is
 * there, so that a frame read in many small chunks is copied once, not once per chunk.
 */
class Received {
  private chunks: Array<Buffer> = []
  private size = 0

  push(chunk: Uint8Array): void {
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    this.size += chunk.byteLength
  }

  /** The next whole frame's body; `undefined` until all of it is here. */
  next(): Buffer | FrameTooLarge | undefined {
    if (this.size < 4) return undefined
    if (this.chunks[0]!.length < 4) this.join()
    const length = this.chunks[0]!.readUInt32BE(0)
    if (length > maxFrame) return new FrameTooLarge({ length })
    if (this.size < 4 + length) return undefined
    const all = this.join()
    this.chunks = [all.subarray(4 + length)]
    this.size -= 4 + length
    return all.subarray(4, 4 + length)
  }

  private join(): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size)
    this.chunks = [all]
    return all
  }
}

/**
 * Answers every whole frame received so far, one after the other, each as its header, then its
 * body; the rest waits for more bytes.
 */
const answerFrames = (connection: Connection.Connection, received: Received) =>
  Effect.gen(function*() {
    while (true) {
      const body = received.next()
      if (body === undefined) return
      if (body instanceof FrameTooLarge) return yield* Effect.fail(body)
      const answer = reversed(body)
      yield* connection.write(header(body.length))
      for (let at = 0; at < answer.length; at += 1024) {
        yield* Effect.sleep("1 millis")
        yield* connection.write(answer.subarray(at, at + 1024))
      }
    }
  })

/** The handler: the drain notice ends the input between two chunks, after whole answers. */
export const lengthPrefixed: Server.Handler<Connection.ConnectionError | FrameTooLarge> = (connection) => {
  const received = new Received()
  return connection.stream.pipe(
    Stream.interruptWhen(connection.draining),
    Stream.runForEach((chunk) =>
      Effect.suspend(() => {
        received.push(chunk)
        return answerFrames(connection, received)
      })
    )
  )
}

/** The bug: the loop raced against the drain notice, which can land in the middle of an answer. */
export const raceDrainHandler: Server.Handler<Connection.ConnectionError | FrameTooLarge> = (connection) => {
  const received = new Received()
  const loop = Stream.runForEach(connection.stream, (chunk) =>
    Effect.suspend(() => {
      received.push(chunk)
      return answerFrames(connection, received)
    }))
  return Effect.raceFirst(loop, connection.draining)
}

/**
 * The protocol, as the test kit checks it: one answer per whole frame, in order; nothing for a
 * partial last frame; a frame over the limit ends the conversation with no answer; at the drain
 * notice, whole answers and then the FIN (an empty farewell). Requests are frames of up to 8 KiB,
 * up to three in one send, now and then cut across two sends.
 */
export const protocol: TestKit.Protocol = {
  name: "length-prefixed",
  farewell: new Uint8Array(0),
  payload: (maxLength) =>
    // Lengths from fast-check, bytes from a seed: drawing each byte would cost more than a run.
    fc.array(fc.tuple(fc.nat({ max: Math.min(maxLength, 8192) }), fc.nat({ max: 255 })), {
      minLength: 1,
      maxLength: 3
    }).chain((frames) =>
      fc.nat({ max: 3 }).map((cut) => {
        const bytes = Buffer.concat(
          frames.flatMap(([length, seed]) => [header(length), Buffer.from(Array.from({ length }, (_, i) => seed ^ i))])
        )
        // Sometimes the last frame's tail is left for a later send.
        return cut === 0 && bytes.length > 1 ? bytes.subarray(0, bytes.length - 1) : bytes
      })
    ),
  conversation: () => {
    const answers: Array<Uint8Array> = []
    let buffered = Buffer.alloc(0)
    let closed = false
    return {
      feed: (chunk) => {
        if (closed) return
        buffered = Buffer.concat([buffered, chunk])
        while (buffered.length >= 4) {
          const length = buffered.readUInt32BE(0)
          if (length > maxFrame) {
            closed = true
            return
          }
          if (buffered.length < 4 + length) return
          answers.push(Buffer.concat([header(length), reversed(buffered.subarray(4, 4 + length))]))
          buffered = buffered.subarray(4 + length)
        }
      },
      expected: () => answers,
      closed: () => closed
    }
  }
}

/** What `simulate --handler examples/length-prefixed.ts` tests. */
export default lengthPrefixed

/** The bug, with the same model. */
export const raceDrain = { handler: raceDrainHandler, protocol }

const program = Effect.gen(function*() {
  const server = yield* Server.make({ host: "127.0.0.1", port: 0 }, lengthPrefixed)
  const frames = ["hello", "length-prefixed", "world"].map((text) =>
    Buffer.concat([header(text.length), Buffer.from(text)])
  )
  const reply = Buffer.from(yield* Client.roundTrip({ port: server.address.port }, frames))
  let at = 0
  while (at + 4 <= reply.length) {
    const length = reply.readUInt32BE(at)
    yield* Effect.log(`answer: ${JSON.stringify(reply.subarray(at + 4, at + 4 + length).toString())}`)
    at += 4 + length
  }
  yield* Effect.log(`${at} bytes of answers, then the end`)
})

// Run as a program; imported (by the tests, or `simulate --handler`), it only exports.
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  Effect.runPromise(Effect.scoped(program))
}
