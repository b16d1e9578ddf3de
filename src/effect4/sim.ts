/**
 * The simulated world's clock and scheduler in Effect 4's interfaces, and how an effect is put in
 * the world; this is the Effect 4 side (`#line/sim`). src/effect3/sim.ts exports the same names.
 *
 * The world (src/internal/sim/world.ts) owns virtual time and the order of everything; these only
 * translate: a sleep becomes a timer of the world, a fiber turn becomes a turn of the world.
 */
import { Clock, Context, Duration, Effect, References, Scheduler as Scheduling } from "effect"
import type { Fiber, LogLevel as Level } from "effect"

/** Effect's clock, as this line spells it. */
export type WorldClock = Clock.Clock

/** Effect's scheduler, as this line spells it. */
export type WorldScheduler = Scheduling.Scheduler

/** A log level of this line's (the minimum a simulated server logs at). */
export type LogLevel = Level.LogLevel

/** The minimum level that lets no record through. */
export const silent: LogLevel = "None"

import type { Timeline, Turns } from "../internal/sim/seams.js"

export type { Timeline, Turns }

const nanos = (millis: number): bigint => BigInt(Math.round(millis * 1_000_000))

/**
 * Effect's clock on the world's virtual time: a sleep is a timer of the world, even one of zero
 * (Effect's own clock yields instead; a timer keeps the world, not Effect, deciding what runs next).
 * The monotonic time is the virtual time too: nothing else passes in the world.
 */
export const makeClock = (timeline: Timeline): Clock.Clock => ({
  currentTimeMillisUnsafe: () => timeline.now(),
  currentTimeMillis: Effect.sync(() => timeline.now()),
  currentTimeNanosUnsafe: () => nanos(timeline.now()),
  currentTimeNanos: Effect.sync(() => nanos(timeline.now())),
  monotonicTimeNanosUnsafe: () => nanos(timeline.now()),
  monotonicTimeNanos: Effect.sync(() => nanos(timeline.now())),
  sleep: (duration: Duration.Duration): Effect.Effect<void> =>
    Effect.callback<void>((resume) => {
      const millis = Duration.toMillis(duration)
      const cancel = timeline.schedule(Number.isFinite(millis) ? millis : Number.MAX_SAFE_INTEGER, "sleep", () =>
        resume(Effect.void))
      return Effect.sync(cancel)
    })
})

/**
 * Effect's scheduler for fibers of the world: every fiber turn is a turn of the world. Effect 4
 * asks each fiber for a dispatcher of its own; all of them are the world's one queue, and their
 * priorities are ignored (turns run in the order they were scheduled, as on Effect 3).
 */
export const makeScheduler = (turns: Turns): Scheduling.Scheduler => {
  const dispatcher: Scheduling.SchedulerDispatcher = {
    scheduleTask: (task) => {
      turns.push(task)
    },
    flush: () => {
      turns.flush()
    }
  }
  return {
    // Tasks run when the world plays them, never inside `scheduleTask`.
    executionMode: "async",
    // Fibers yield as Effect's default scheduler makes them (every `MaxOpsBeforeYield`
    // operations, 2,048 unless set): often enough for the seed to interleave them, rarely
    // enough to keep runs fast.
    shouldYield: (fiber: Fiber.Fiber<unknown, unknown>) => fiber.currentOpCount >= fiber.cache.maxOpsBeforeYield,
    makeDispatcher: () => dispatcher
  }
}

/** `effect` with the world's clock and scheduler, logging at `logLevel` and above. */
export const within = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  world: { readonly clock: WorldClock; readonly scheduler: WorldScheduler; readonly logLevel: LogLevel }
): Effect.Effect<A, E, R> =>
  effect.pipe(
    Effect.provideService(References.MinimumLogLevel, world.logLevel),
    Effect.provideService(Clock.Clock, world.clock),
    Effect.provideService(Scheduling.Scheduler, world.scheduler)
  )

/**
 * The services of the effect's caller, for what the world runs: all but what the world owns. A
 * `Context` holds the caller's references too on this line, among them the scheduler its fiber
 * runs on (`Effect.runSync` adds one), a test's clock, and its minimum log level; provided inside
 * the world, they would take the world's place.
 */
export const callerServices = <R>(context: Context.Context<R>): Context.Context<R> =>
  Context.omit(Scheduling.Scheduler, Clock.Clock, References.MinimumLogLevel)(context)
