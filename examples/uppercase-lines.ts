/**
 * A protocol of your own on the server's primitives: every "\n"-terminated line comes back
 * uppercased. A line longer than the limit gets an `ERR` line back, then fails the handler with
 * its own typed error, marked as the peer's fault (`Server.PeerFault`): the server closes that
 * connection normally (the `ERR` line arrives, then the FIN), logs the error at info (not as a
 * bug in the handler), counts it under its own reason, `LineTooLong`, and goes on serving.
 *
 * When the server begins to shut down, each connection is told (`connection.draining`): the
 * handler stops at the next line boundary, says `BYE` in-band and ends, instead of being cut off
 * at the shutdown deadline with a reset.
 *
 * It also exports the protocol's model for the test kit (`protocol`: what a complete answer is),
 * and a broken variant that forgets its `BYE` (`withoutBye`): the simulation finds it at once
 * (test/Protocols.test.ts, or `npm run simulate -- --handler examples/uppercase-lines.ts#withoutBye`).
 *
 * Run: npx tsx examples/uppercase-lines.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Chunk, Data, Effect, Either, Exit, FastCheck as fc, Fiber, Metric, Scope, Stream } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Client, Metrics, Server } from "../src/index.js"
import type { Connection, TestKit } from "../src/index.js"

/** A peer sent a line longer than the server accepts: the peer's doing, not a bug. */
class LineTooLong extends Data.TaggedError("LineTooLong")<{
  readonly limit: number
  readonly peer: string
}> {
  readonly [Server.PeerFault] = "LineTooLong"
  override get message(): string {
    return `${this.peer} sent a line longer than ${this.limit} characters`
  }
}

const farewell = "BYE server shutting down\n"

/**
 * Answers each line uppercased, as soon as its "\n" arrives; an unterminated last line at EOF too.
 * `sayBye: false` is the bug: at the drain notice it ends without a word, and a peer cannot tell
 * the answers it got from answers cut short.
 */
export const uppercaseLines = (
  limit: number,
  { sayBye = true }: { readonly sayBye?: boolean } = {}
): Server.Handler<LineTooLong | Connection.ConnectionError> =>
(connection) => {
  // The line received so far: the limit bounds it, so a peer that never sends "\n" holds little.
  let partial = ""
  let draining = false
  const checked = (line: string) =>
    line.length > limit
      ? Effect.zipRight(
        // Said in-band first: the peer should know why its answer stops here. A peer fault ends
        // the connection with a FIN after this line, not a reset that could discard it.
        Effect.ignore(connection.write(Buffer.from(`ERR line longer than ${limit}\n`))),
        Effect.fail(new LineTooLong({ limit, peer: connection.peer }))
      )
      : Effect.succeed(line)
  const answer = (line: string) =>
    Effect.flatMap(checked(line), (ok) => connection.write(Buffer.from(ok.toUpperCase() + "\n")))
  return connection.stream.pipe(
    // The drain notice ends the stream between two chunks: every line answered so far stays answered.
    Stream.interruptWhen(Effect.zipRight(connection.draining, Effect.sync(() => (draining = true)))),
    Stream.decodeText(),
    Stream.runForEach((text) => {
      const lines = (partial + text).split("\n")
      partial = lines.pop() ?? ""
      return Effect.zipRight(Effect.forEach(lines, answer, { discard: true }), checked(partial))
    }),
    Effect.zipRight(
      Effect.suspend(() =>
        draining
          ? sayBye ? connection.write(Buffer.from(farewell)) : Effect.void
          : partial === ""
          ? Effect.void
          : connection.write(Buffer.from(partial.toUpperCase()))
      )
    )
  )
}

/**
 * The protocol, as the test kit checks it: each line comes back uppercased; the first line longer
 * than `limit` (even unterminated) gets the ERR line, and the server ends the conversation there;
 * at the peer's half-close, an unterminated last line comes back uppercased too; at the drain
 * notice, the server ends after whole lines with BYE. Requests are lines of ASCII words, now and
 * then longer than the limit.
 */
export function uppercaseLinesProtocol(limit: number): TestKit.Protocol {
  return {
    name: "uppercase lines",
    farewell: Buffer.from(farewell),
    payload: (maxLength) =>
      fc.array(fc.stringMatching(/^[a-z ]{0,20}$/), { maxLength: Math.max(1, Math.floor(maxLength / 12)) }).chain((
        lines
      ) => fc.boolean().map((unterminated) => Buffer.from(lines.join("\n") + (unterminated ? "" : "\n")))),
    conversation: () => {
      const answers: Array<Uint8Array> = []
      let partial = ""
      let closed = false
      return {
        feed: (chunk) => {
          for (const byte of chunk) {
            if (closed) return
            if (byte === 0x0a) {
              answers.push(Buffer.from(partial.toUpperCase() + "\n"))
              partial = ""
              continue
            }
            partial += String.fromCharCode(byte)
            if (partial.length > limit) {
              answers.push(Buffer.from(`ERR line longer than ${limit}\n`))
              closed = true
            }
          }
        },
        expected: () => answers,
        complete: () => Buffer.concat([...answers, Buffer.from(closed ? "" : partial.toUpperCase())]),
        closed: () => closed
      }
    }
  }
}

/** The model of the handler exported as default: `npm run simulate` reads it by this name. */
export const protocol = uppercaseLinesProtocol(16)

/** The handler `npm run simulate -- --handler examples/uppercase-lines.ts` tests. */
export default uppercaseLines(16)

/** The bug: no BYE at the drain notice. */
export const withoutBye = { handler: uppercaseLines(16, { sayBye: false }), protocol: uppercaseLinesProtocol(16) }

const send = (port: number, text: string) =>
  Client.roundTrip({ port }, [Buffer.from(text)]).pipe(
    Effect.map((reply) => Buffer.from(reply).toString()),
    Effect.either
  )

const tooLong = Metric.value(Metrics.connectionErrors.pipe(Metric.tagged("reason", "LineTooLong")))

const program = Effect.gen(function*() {
  const serverScope = yield* Scope.make()
  const server = yield* Scope.extend(
    Server.make({ host: "127.0.0.1", port: 0, shutdownTimeout: "30 seconds" }, uppercaseLines(16)),
    serverScope
  )
  const port = server.address.port

  for (const text of ["hello\nworld\n", `short\n${"x".repeat(40)}\n`, "still\nserving"]) {
    const reply = yield* send(port, text)
    yield* Effect.log(
      `sent ${JSON.stringify(text)} -> ${
        Either.match(reply, { onLeft: (e) => `error: ${e.message}`, onRight: (s) => JSON.stringify(s) })
      }`
    )
  }
  yield* Effect.log(`connections closed for a line too long: ${(yield* tooLong).count}`)

  // A client still connected when the server shuts down is told so, then sees a clean end: the
  // shutdown does not wait for its 30 s deadline.
  const shutdown = yield* Effect.scoped(Effect.gen(function*() {
    const client = yield* Client.connect({ port })
    yield* client.write(Buffer.from("last line\n"))
    const first = Buffer.from(Chunk.unsafeHead(yield* client.read)).toString()
    const shutdown = yield* Effect.fork(Scope.close(serverScope, Exit.void))
    const rest = Buffer.from(yield* Client.readAll(client)).toString()
    yield* Effect.log(`during shutdown the client got ${JSON.stringify(first + rest)}, then the end`)
    return shutdown
  }))
  // The client closed on that end: the server, done with its last connection, has shut down.
  yield* Fiber.join(shutdown)
  yield* Effect.log("shut down without reaching the deadline")
})

// Run as a program; imported (by the tests, or `simulate --handler`), it only exports.
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  program.pipe(Effect.scoped, NodeRuntime.runMain)
}
