/**
 * A property test of a custom handler over real loopback sockets: a handler that flips bit 0x20
 * of every byte (ASCII case swap) must return exactly the transformed bytes, however the client
 * chunks its payload. One server serves every run; fast-check drives the client.
 *
 * Run: npx tsx examples/property-test-handler.ts   (exits 0 when the property holds)
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Stream } from "effect"
import fc from "fast-check"
import * as assert from "node:assert/strict"
import { Client, Server } from "../src/index.js"
import type { Connection } from "../src/index.js"

const flip = (bytes: Uint8Array): Uint8Array => Buffer.from(bytes.map((byte) => byte ^ 0x20))

/** Every byte back with bit 0x20 flipped, chunk by chunk as it arrives; EOF ends the reply. */
const flipCase: Server.Handler<Connection.ConnectionError> = (connection) =>
  Stream.runForEach(connection.stream, (chunk) => connection.write(flip(chunk)))

const chunks = fc.array(fc.uint8Array({ maxLength: 16 * 1024 }), { maxLength: 16 })

const program = Effect.gen(function*() {
  const server = yield* Server.make({ host: "127.0.0.1", port: 0 }, flipCase)
  const port = server.address.port

  // A failed property rejects with the shrunk counterexample: a defect, printed by runMain (exit 1).
  yield* Effect.promise(() =>
    fc.assert(
      fc.asyncProperty(chunks, (payload) =>
        Effect.runPromise(
          Client.roundTrip({ port }, payload).pipe(
            // assert throws (a defect) with a diff on mismatch; success is void, which fast-check accepts.
            Effect.map((received) => assert.deepStrictEqual(Buffer.from(received), flip(Buffer.concat(payload))))
          )
        )),
      { numRuns: 20 }
    )
  )
  yield* Effect.log("property held for 20 runs: the reply is exactly the flipped bytes")
})

program.pipe(Effect.scoped, NodeRuntime.runMain)
