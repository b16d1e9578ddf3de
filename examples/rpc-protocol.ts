/**
 * An @effect/rpc server on this server (`PlatformSocketServer.serve`, as examples/rpc-over-tcp.ts
 * runs it), and a model of its wire protocol for the test kit: ndjson, one request per line
 * (`{"_tag":"Request","id":"7","tag":"Shout",...}`), one `Exit` line per request in order. A peer
 * that half-closes gets an answer to every request line it sent, then a FIN; at the drain notice the server ends a conversation after whole answers
 * (an empty farewell). Requests are `Shout`s of a few words, and now and then a `Download` of up
 * to 64 KiB, whose large answer a stalled peer holds up.
 *
 * `onLayer` is the mistake the README warns of: the `RpcServer` built on
 * `PlatformSocketServer.layer` instead of `serve`. Its release comes first and waits, without
 * end, for the answers it is writing to a peer that stopped reading, before the server's shutdown
 * (and its deadline) has even begun: the test kit finds the shutdown that never returns.
 *
 *   npm run simulate -- --handler examples/rpc-protocol.ts
 *   npm run simulate -- --handler examples/rpc-protocol.ts#onLayer
 */
import * as SocketServer from "@effect/platform/SocketServer"
import { Rpc, RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { Context, Effect, FastCheck as fc, Layer, Schema } from "effect"
import type { Server, TestKit } from "../src/index.js"
import { PlatformSocketServer } from "../src/index.js"

class Api extends RpcGroup.make(
  Rpc.make("Shout", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Download", { payload: { bytes: Schema.Number }, success: Schema.String })
) {}

const handlers = Api.toLayer({
  Shout: ({ text }) => Effect.succeed(text.toUpperCase()),
  Download: ({ bytes }) => Effect.succeed("x".repeat(bytes))
})

const app = RpcServer.layer(Api).pipe(Layer.provide(handlers), Layer.provide(RpcServer.layerProtocolSocketServer))

/** The port the built layer listens on. */
const portOf = (context: Context.Context<SocketServer.SocketServer>) => {
  const address = Context.get(context, SocketServer.SocketServer).address
  return { port: address._tag === "TcpAddress" ? address.port : 0 }
}

/** The RpcServer with `PlatformSocketServer.serve`: one release, under the server's deadline. */
export const serve = (options: Server.Options) =>
  Effect.map(
    Layer.build(PlatformSocketServer.serve(app, options).pipe(Layer.provide(RpcSerialization.layerNdjson))),
    portOf
  )

/** The mistake: built on `PlatformSocketServer.layer`, released before the server's shutdown begins. */
export const serveOnLayer = (options: Server.Options) =>
  Effect.map(
    Layer.build(
      Layer.provideMerge(
        app.pipe(Layer.provide(RpcSerialization.layerNdjson)),
        PlatformSocketServer.layer(options)
      )
    ),
    portOf
  )

interface Request {
  readonly _tag: "Request"
  readonly id: string
  readonly tag: "Shout" | "Download"
  readonly payload: { readonly text: string } | { readonly bytes: number }
  readonly headers: ReadonlyArray<never>
}

const line = (value: unknown) => Buffer.from(`${JSON.stringify(value)}\n`)

/** The answer @effect/rpc's ndjson serialization writes for a request of this Api. */
const answer = (request: Request) =>
  line({
    _tag: "Exit",
    requestId: request.id,
    exit: {
      _tag: "Success",
      value: "text" in request.payload ? request.payload.text.toUpperCase() : "x".repeat(request.payload.bytes)
    }
  })

const request: fc.Arbitrary<Request> = fc.oneof(
  {
    weight: 9,
    arbitrary: fc.record({
      // Ids wide enough that two requests of one connection never share one.
      id: fc.bigInt({ min: 0n, max: 2n ** 53n }).map(String),
      text: fc.stringMatching(/^[a-z ]{0,12}$/)
    }).map(({ id, text }): Request => ({ _tag: "Request", id, tag: "Shout", payload: { text }, headers: [] }))
  },
  {
    weight: 1,
    arbitrary: fc.record({ id: fc.bigInt({ min: 0n, max: 2n ** 53n }).map(String), bytes: fc.nat({ max: 65536 }) })
      .map(({ bytes, id }): Request => ({ _tag: "Request", id, tag: "Download", payload: { bytes }, headers: [] }))
  }
)

/** The wire protocol, as the test kit checks it. */
export const protocol: TestKit.Protocol = {
  name: "rpc ndjson",
  farewell: new Uint8Array(0),
  // Whole lines only: a line cut across two sends would be another request's garbage.
  payload: () => fc.array(request, { minLength: 1, maxLength: 4 }).map((requests) => Buffer.concat(requests.map(line))),
  conversation: () => {
    const answers: Array<Uint8Array> = []
    let partial = ""
    return {
      feed: (chunk) => {
        const lines = (partial + Buffer.from(chunk).toString("utf8")).split("\n")
        partial = lines.pop()!
        for (const text of lines) answers.push(answer(JSON.parse(text) as Request))
      },
      expected: () => answers
    }
  }
}

/** What `simulate --handler examples/rpc-protocol.ts` tests. */
export default { serve, protocol }

/** The mistake, with the same model. */
export const onLayer = { serve: serveOnLayer, protocol }
