/**
 * The simulated world's clock and scheduler in Effect 3's interfaces, and how an effect is put in
 * the world; this is the Effect 3 side (`#line/sim`). src/effect4/sim.ts exports the same names.
 *
 * The world (src/internal/sim/world.ts) owns virtual time and the order of everything; these only
 * translate: a sleep becomes a timer of the world, a fiber turn becomes a turn of the world.
 */
import { Clock, Duration, Effect, Logger, LogLevel as Level } from "effect"
import type { Context, Fiber, Scheduler as Scheduling } from "effect"

/** Effect's clock, as this line spells it. */
export type WorldClock = Clock.Clock

/** Effect's scheduler, as this line spells it. */
export type WorldScheduler = Scheduling.Scheduler

/** A log level of this line's (the minimum a simulated server logs at). */
export type LogLevel = Level.LogLevel

/** The minimum level that lets no record through. */
export const silent: LogLevel = Level.None

import type { Timeline, Turns } from "../internal/sim/seams.js"

export type { Timeline, Turns }

/** Effect's clock on the world's virtual time: a sleep is a timer of the world. */
export const makeClock = (timeline: Timeline): Clock.Clock => {
  const sleep = (duration: Duration.Duration): Effect.Effect<void> =>
    Effect.async<void>((resume) => {
      const millis = Duration.toMillis(duration)
      const cancel = timeline.schedule(Number.isFinite(millis) ? millis : Number.MAX_SAFE_INTEGER, "sleep", () =>
        resume(Effect.void))
      return Effect.sync(cancel)
    })
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => timeline.now(),
    currentTimeMillis: Effect.sync(() => timeline.now()),
    unsafeCurrentTimeNanos: () => BigInt(Math.round(timeline.now() * 1_000_000)),
    currentTimeNanos: Effect.sync(() => BigInt(Math.round(timeline.now() * 1_000_000))),
    sleep
  }
}

/** Effect's scheduler for fibers of the world: every fiber turn is a turn of the world. */
export const makeScheduler = (turns: Turns): Scheduling.Scheduler => ({
  scheduleTask: (task, _priority, _fiber?: Fiber.RuntimeFiber<unknown, unknown>) => {
    turns.push(task)
  },
  // Fibers yield as Effect's default scheduler makes them (every 2,048 operations): often enough
  // for the seed to interleave them, rarely enough to keep runs fast.
  shouldYield: (fiber) => fiber.currentOpCount > 2048 ? 0 : false
})

/** `effect` with the world's clock and scheduler, logging at `logLevel` and above. */
export const within = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  world: { readonly clock: WorldClock; readonly scheduler: WorldScheduler; readonly logLevel: LogLevel }
): Effect.Effect<A, E, R> =>
  effect.pipe(
    Logger.withMinimumLogLevel(world.logLevel),
    Effect.withClock(world.clock),
    Effect.withScheduler(world.scheduler)
  )

/**
 * The services of the effect's caller, for what the world runs: all of them. A `Context` holds
 * services only on this line; the scheduler, the clock and the minimum log level are fiber refs,
 * which the world's own root fiber does not inherit.
 */
export const callerServices = <R>(context: Context.Context<R>): Context.Context<R> => context
