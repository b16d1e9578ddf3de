/**
 * A worker's side of the channel (internal/workers/worker.ts) in this process: the controls
 * applied to a server of the test's own, and `attach` answering messages emitted on `process`,
 * with `process.send` recording what would go to the primary. The real channel is tested in
 * test/Workers.test.ts, with forked workers.
 */
import { extendScope } from "#line/kit"
import { poll } from "#line/runtime"
import { fork } from "#test-line/guarantees"
import { describe, expect, it, onTestFinished } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import * as Protocol from "../src/internal/workers/protocol.js"
import * as Worker from "../src/internal/workers/worker.js"
import { ListenError } from "../src/Listener.js"
import { ServerError } from "../src/Server.js"

const tag = Protocol.tag

/** A server whose controls record their calls, the limit refused past 10. */
const serverOf = () => {
  const calls: Array<string> = []
  const server = {
    address: { host: "127.0.0.1", port: 7000 },
    suspend: Effect.sync(() => void calls.push("suspend")),
    resume: Effect.sync(() => void calls.push("resume")),
    setMaxConnections: (n: number) =>
      n > 10
        ? Effect.fail(
          new ServerError({
            reason: "InvalidOption",
            address: "127.0.0.1:7000",
            option: "maxConnections",
            value: n,
            expected: "at most 10"
          })
        )
        : Effect.sync(() => void calls.push(`setMaxConnections ${n}`))
  }
  return { calls, server }
}

type Send = NonNullable<typeof process.send>

/** Replaces `process.send` (and `process.connected`) for the test. */
const replaceSend = (send: Send | undefined, connected: boolean) => {
  const sendBefore = Object.getOwnPropertyDescriptor(process, "send")
  const connectedBefore = Object.getOwnPropertyDescriptor(process, "connected")
  Object.defineProperty(process, "send", { value: send, configurable: true, writable: true })
  Object.defineProperty(process, "connected", { value: connected, configurable: true })
  onTestFinished(() => {
    for (const [key, before] of [["send", sendBefore], ["connected", connectedBefore]] as const) {
      if (before !== undefined) Object.defineProperty(process, key, before)
      else delete (process as unknown as Record<string, unknown>)[key]
    }
  })
}

/** What `process.send` is given during the test, each written at once. */
const recordSends = () => {
  const sent: Array<unknown> = []
  replaceSend(
    ((message: unknown, _handle: unknown, _options: unknown, callback?: (error: Error | null) => void) => {
      sent.push(message)
      callback?.(null)
      return true
    }) as Send,
    true
  )
  return sent
}

/**
 * The listener `attach` added for `event` (not the test runner's own, which shares the channel):
 * what the primary's messages reach.
 */
const added = (event: "message" | "disconnect", before: ReadonlyArray<unknown>) => {
  const listener = process.listeners(event as "message").find((l) => !before.includes(l))
  if (listener === undefined) throw new Error(`attach added no ${event} listener`)
  return listener as (message?: unknown) => void
}

describe("a worker applies the primary's controls to its server (worker.ts)", () => {
  it.effect("each control reaches the server's own; what the server refuses is said in its words", () =>
    Effect.gen(function*() {
      const { calls, server } = serverOf()
      yield* Worker.apply(server, { action: "suspend" })
      yield* Worker.apply(server, { action: "resume" })
      yield* Worker.apply(server, { action: "setMaxConnections", maxConnections: 3 })
      expect(calls).toEqual(["suspend", "resume", "setMaxConnections 3"])
      expect(yield* Effect.flip(Worker.apply(server, { action: "setMaxConnections", maxConnections: 11 }))).toBe(
        "invalid maxConnections: 11 (expected at most 10)"
      )
    }))

  it.effect("a resume the server refuses is said in its words", () =>
    Effect.gen(function*() {
      const { server } = serverOf()
      const refusing = {
        ...server,
        resume: Effect.fail(new ListenError({ reason: "AddressInUse", address: "127.0.0.1:7000" }))
      }
      expect(yield* Effect.flip(Worker.apply(refusing, { action: "resume" }))).toBe(
        "127.0.0.1:7000 is already in use"
      )
    }))

  it.effect("a server without a control says which it cannot do", () =>
    Effect.gen(function*() {
      expect(yield* Effect.flip(Worker.apply({}, { action: "suspend" }))).toBe("its server cannot suspend accepting")
      expect(yield* Effect.flip(Worker.apply({}, { action: "resume" }))).toBe("its server cannot resume accepting")
      expect(yield* Effect.flip(Worker.apply({}, { action: "setMaxConnections", maxConnections: 1 }))).toBe(
        "its server cannot change maxConnections"
      )
    }))
})

describe("attach, the worker's end of the channel (worker.ts)", () => {
  it.live("says it listens, answers scrapes and controls by request number, waits for the shutdown; lets go with its scope", () =>
    Effect.gen(function*() {
      const sent = recordSends()
      const { calls, server } = serverOf()
      const scope = yield* Scope.make()
      const before = process.listeners("message")
      const stopped = yield* extendScope(Worker.attach(server), scope)
      expect(sent).toEqual([{ [tag]: "listening", address: server.address }])
      const primary = added("message", before)
      const waiting = yield* fork(stopped)
      primary({ [tag]: "control", request: 7, control: { action: "suspend" } })
      primary({ [tag]: "control", request: 8, control: { action: "setMaxConnections", maxConnections: 99 } })
      primary({ [tag]: "metrics", request: 9 })
      primary({ [tag]: "control", request: 10 })
      primary({ [tag]: "metrics" })
      primary({ [tag]: "listening", request: 11, control: { action: "resume" } })
      primary({ someone: "else" })
      primary(null)
      primary("text")
      yield* Effect.sleep("50 millis")
      expect(calls).toEqual(["suspend"])
      expect(sent).toContainEqual({ [tag]: "controlled", request: 7 })
      expect(sent).toContainEqual({
        [tag]: "controlled",
        request: 8,
        error: "invalid maxConnections: 99 (expected at most 10)"
      })
      const scraped = sent.find((m) => (m as { request?: number }).request === 9) as { series?: unknown }
      expect(scraped).toEqual({ [tag]: "metrics", request: 9, series: expect.any(Array) })
      // Three answers after the first line: nothing for the messages that are not whole, or not ours.
      expect(sent).toHaveLength(4)
      expect(poll(waiting)).toBeUndefined()
      primary({ [tag]: "shutdown" })
      yield* Fiber.join(waiting)
      yield* Scope.close(scope, Exit.void)
      expect(process.listeners("message")).toEqual(before)
    }))

  it.live("the primary gone (the channel disconnected) is a shutdown too", () =>
    Effect.gen(function*() {
      recordSends()
      const before = process.listeners("disconnect")
      yield* Effect.scoped(Effect.gen(function*() {
        const stopped = yield* Worker.attach(serverOf().server)
        added("disconnect", before)()
        yield* stopped
      }))
      expect(process.listeners("disconnect")).toEqual(before)
    }))

  it.effect("nothing is sent without a channel to the primary, and no error", () =>
    Effect.gen(function*() {
      replaceSend(undefined, false)
      yield* Worker.send({ [tag]: "failed", message: "no one hears this" })
      // A channel that closed: not written either.
      const sent: Array<unknown> = []
      replaceSend(((message: unknown) => sent.push(message) > 0) as Send, false)
      yield* Worker.send({ [tag]: "failed", message: "nor this" })
      expect(sent).toEqual([])
      // A channel that breaks as it is written to (ERR_IPC_CHANNEL_CLOSED): nothing to wait for.
      replaceSend(
        (() => {
          throw new Error("channel closed")
        }) as Send,
        true
      )
      yield* Worker.send({ [tag]: "failed", message: "lost" })
    }))
})
