/**
 * The workers' controls (internal/workers/controls.ts) without a process: what is in force after
 * each control, what a worker that listens later is told, in which order, and what a refusal
 * leaves in force. Workers are fakes that record what they are told and answer as asked.
 */
import { poll } from "#line/runtime"
import { fork, yieldNow } from "#test-line/guarantees"
import { withLogger } from "#test-line/logging"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Logger, Option } from "effect"
import * as Controls from "../src/internal/workers/controls.js"

const suspend = { action: "suspend" } as const
const resume = { action: "resume" } as const
const limit = (maxConnections: number) => ({ action: "setMaxConnections", maxConnections }) as const

/** A worker that records the controls it is told, and refuses those `refuse` names. */
const fake = (id: number, refuse: (control: Controls.Control) => string | undefined = () => undefined) => {
  const told: Array<Controls.Control> = []
  const target: Controls.Target = {
    id,
    pid: 1000 + id,
    apply: (control) =>
      Effect.sync(() => {
        told.push(control)
        return refuse(control)
      })
  }
  return { told, target }
}

/** Controls over `workers` (the ones listening now, read at each control), and how often a suspend pinned the port. */
const controlsOf = (workers: () => ReadonlyArray<ReturnType<typeof fake>>) =>
  Effect.gen(function*() {
    let pins = 0
    const controls = yield* Controls.make(() => workers().map((w) => w.target), () => pins++)
    return { controls, pins: () => pins }
  })

describe("what is in force (controls.ts)", () => {
  it("a worker that listens later is told the suspend, then the limit; nothing while none is in force", () => {
    expect(Controls.replay(Controls.initial)).toEqual([])
    expect(Controls.replay({ suspended: true, maxConnections: 7 })).toEqual([suspend, limit(7)])
    expect(Controls.replay({ suspended: false, maxConnections: 7 })).toEqual([limit(7)])
    expect(Controls.replay({ suspended: true, maxConnections: undefined })).toEqual([suspend])
  })

  it("a suspend is in force once asked; a resume or a limit once every worker took it", () => {
    const suspended = { suspended: true, maxConnections: 3 }
    expect(Controls.asked(Controls.initial, suspend)).toEqual({ suspended: true, maxConnections: undefined })
    expect(Controls.asked(suspended, resume)).toBe(suspended)
    expect(Controls.asked(suspended, limit(9))).toBe(suspended)
    expect(Controls.taken(suspended, resume)).toEqual({ suspended: false, maxConnections: 3 })
    expect(Controls.taken(suspended, limit(9))).toEqual({ suspended: true, maxConnections: 9 })
    expect(Controls.taken(suspended, suspend)).toBe(suspended)
  })
})

describe("the controls, reconciled into each worker (controls.ts)", () => {
  it.effect("every worker listening is told; one that listens later is told what is in force, in order", () =>
    Effect.gen(function*() {
      const one = fake(1)
      const two = fake(2)
      const { controls, pins } = yield* controlsOf(() => [one, two])
      yield* controls.apply(limit(5))
      expect(pins()).toBe(0)
      yield* controls.apply(suspend)
      expect(one.told).toEqual([limit(5), suspend])
      expect(two.told).toEqual([limit(5), suspend])
      expect(pins()).toBe(1)
      const later = fake(1)
      yield* controls.catchUp(later.target)
      expect(later.told).toEqual([suspend, limit(5)])
      yield* controls.apply(resume)
      expect(yield* controls.inForce).toEqual({ suspended: false, maxConnections: 5 })
      const afterResume = fake(2)
      yield* controls.catchUp(afterResume.target)
      expect(afterResume.told).toEqual([limit(5)])
    }))

  it.effect("a refusal fails with the first worker that refused and why; a refused limit is not in force", () =>
    Effect.gen(function*() {
      const one = fake(1)
      const two = fake(2, (control) => control.action === "setMaxConnections" ? "no" : undefined)
      const three = fake(3, (control) => control.action === "setMaxConnections" ? "not either" : undefined)
      const { controls } = yield* controlsOf(() => [one, two, three])
      const refusal = yield* Effect.flip(controls.apply(limit(4)))
      expect(refusal).toEqual({ worker: 2, control: limit(4), detail: "no" })
      // Every worker was asked, the one that took it keeps it; later workers are not told.
      expect([one.told, two.told, three.told]).toEqual([[limit(4)], [limit(4)], [limit(4)]])
      expect(yield* controls.inForce).toEqual(Controls.initial)
      const later = fake(1)
      yield* controls.catchUp(later.target)
      expect(later.told).toEqual([])
    }))

  it.effect("a refused resume leaves the workers suspended: restarts keep waiting, a later worker is suspended", () =>
    Effect.gen(function*() {
      let refuse = true
      const one = fake(1, (control) => refuse && control.action === "resume" ? "port taken" : undefined)
      const { controls } = yield* controlsOf(() => [one])
      yield* controls.apply(suspend)
      const waiting = yield* fork(controls.resumed)
      yield* yieldNow
      expect(poll(waiting)).toBeUndefined()
      expect(yield* Effect.flip(controls.apply(resume))).toEqual({ worker: 1, control: resume, detail: "port taken" })
      expect(yield* controls.inForce).toEqual({ suspended: true, maxConnections: undefined })
      expect(poll(waiting)).toBeUndefined()
      const later = fake(2)
      yield* controls.catchUp(later.target)
      expect(later.told).toEqual([suspend])
      refuse = false
      yield* controls.apply(resume)
      yield* Fiber.join(waiting)
      expect(yield* controls.inForce).toEqual(Controls.initial)
    }))

  it.live("every worker is asked at once: one that does not answer holds up none of the others", () =>
    Effect.gen(function*() {
      // Worker 1 answers only once worker 2 was asked: asked one after the other, neither would.
      const asked = yield* Deferred.make<void>()
      const first: Controls.Target = { id: 1, pid: 1001, apply: () => Effect.as(Deferred.await(asked), undefined) }
      const second: Controls.Target = {
        id: 2,
        pid: 1002,
        apply: () => Effect.as(Deferred.succeed(asked, undefined), undefined)
      }
      const controls = yield* Controls.make(() => [first, second], () => {})
      expect(yield* Effect.timeoutOption(controls.apply(suspend), "5 seconds")).toEqual(Option.some(undefined))
    }))

  it.effect("no worker listening: a control is in force for those that listen later", () =>
    Effect.gen(function*() {
      const { controls } = yield* controlsOf(() => [])
      yield* controls.apply(suspend)
      yield* controls.apply(limit(2))
      const later = fake(1)
      yield* controls.catchUp(later.target)
      expect(later.told).toEqual([suspend, limit(2)])
    }))

  it.effect("controls asked at once are applied one at a time, in the order asked", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const resuming = yield* Deferred.make<void>()
      const told: Array<string> = []
      const target: Controls.Target = {
        id: 1,
        pid: 1001,
        apply: (control) =>
          Effect.as(
            Effect.andThen(
              Effect.sync(() => told.push(`${control.action} begins`)),
              control.action === "resume"
                ? Effect.andThen(Deferred.succeed(resuming, undefined), Deferred.await(gate))
                : Effect.void
            ).pipe(Effect.tap(Effect.sync(() => told.push(`${control.action} ends`)))),
            undefined
          )
      }
      const controls = yield* Controls.make(() => [target], () => {})
      yield* controls.apply(suspend)
      told.length = 0
      const both = yield* fork(
        Effect.all([controls.apply(resume), controls.apply(suspend)], { concurrency: "unbounded" })
      )
      // The resume holds the worker: the suspend asked with it waits for its turn.
      yield* Deferred.await(resuming)
      yield* yieldNow
      expect(told).toEqual(["resume begins"])
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(both)
      expect(told).toEqual(["resume begins", "resume ends", "suspend begins", "suspend ends"])
      expect(yield* controls.inForce).toEqual({ suspended: true, maxConnections: undefined })
    }))

  it.effect("a worker that listens later and refuses is logged, naming it and the control; it serves on", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const { controls } = yield* controlsOf(() => [])
      yield* controls.apply(suspend)
      yield* controls.apply(limit(3))
      const later = fake(4, (control) => control.action === "suspend" ? "cannot" : undefined)
      yield* controls.catchUp(later.target).pipe(
        withLogger(Logger.make(({ message }) => logged.push(String(message))), true)
      )
      // The rest is still told.
      expect(later.told).toEqual([suspend, limit(3)])
      expect(logged).toEqual(["worker 4 (pid 1004), restarted, could not suspend: cannot"])
    }))
})
