/**
 * The last step of an abrupt exit, in this process: every socket a listener holds whose answer
 * is not whole is reset, one whose answer is whole (its FIN handed to the kernel after all its
 * bytes) closed normally. (The exit itself, with real processes: ForcedExit.test.ts.)
 */
import { extendScope } from "#line/kit"
import { callback } from "#line/runtime"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { Listener, TestKit } from "../src/index.js"
import * as ExitReset from "../src/internal/exitReset.js"
import * as Transport from "../src/internal/transport.js"
import { readToEnd } from "./utils/peers.js"

/** A peer of `listener`, and the socket the listener accepted for it. */
const accepted = (listener: Listener.Listener) =>
  Effect.gen(function*() {
    const peer = yield* TestKit.connect(listener.address.port)
    const socket = yield* listener.accept
    return { peer: peer.socket, socket }
  })

describe("the reset on the way out", () => {
  it.live("resets every answer not whole, and closes a whole one normally", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const listener = yield* extendScope(Listener.make(), scope)
      const peers = yield* Scope.make()
      const [cut, whole, silent] = yield* extendScope(
        Effect.all([accepted(listener), accepted(listener), accepted(listener)]),
        peers
      )
      // More than the kernels hold for a peer that reads nothing: some stays in Node's buffer.
      cut.socket.write(Buffer.alloc(32 * 1024 * 1024, 1))
      whole.socket.end("done")
      yield* callback<void>((resume) => {
        whole.socket.once("finish", () => resume(Effect.void))
      })
      expect(ExitReset.resetAll()).toBe(3)
      // Closed already, even before Node says so: nothing is left to reset.
      expect(ExitReset.resetAll()).toBe(0)
      expect(yield* readToEnd(cut.peer)).toMatchObject({ error: "ECONNRESET" })
      expect(yield* readToEnd(whole.peer)).toEqual({ data: Buffer.from("done") })
      // Nothing was written to it: its answer, none, cannot pass for more than it is.
      expect((yield* readToEnd(silent.peer)).error).toBe("ECONNRESET")
      yield* Scope.close(scope, Exit.void)
      yield* Scope.close(peers, Exit.void)
    }))

  it.live("limited to one transport, it resets that one's listeners and leaves every other alone", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      // The test kit's runs each put their server on a transport of their own.
      const own: Transport.Transport = { ...Transport.node }
      const mine = yield* extendScope(
        Effect.provideService(Listener.make(), Transport.CurrentTransport, own),
        scope
      )
      const other = yield* extendScope(Listener.make(), scope)
      const peers = yield* Scope.make()
      const [reset, spared] = yield* extendScope(Effect.all([accepted(mine), accepted(other)]), peers)
      expect(ExitReset.resetOn(own)).toBe(1)
      expect((yield* readToEnd(reset.peer)).error).toBe("ECONNRESET")
      expect(spared.socket.destroyed).toBe(false)
      expect(ExitReset.resetOn(own)).toBe(0)
      yield* Scope.close(scope, Exit.void)
      yield* Scope.close(peers, Exit.void)
    }))

  it.scopedLive("it runs on the process's exit, once, however many listeners there are", () =>
    Effect.gen(function*() {
      yield* Listener.make()
      yield* Listener.make()
      expect(process.listeners("exit").filter((listener) => listener === ExitReset.resetAll)).toHaveLength(1)
    }))
})
