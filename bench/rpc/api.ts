/**
 * The RPC the bench serves and calls: one request, its text back.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Effect, Schema } from "effect"

export class Api extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String })
) {}

export const handlers = Api.toLayer({
  Echo: ({ text }) => Effect.succeed(text)
})
