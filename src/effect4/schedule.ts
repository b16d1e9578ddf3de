/**
 * Schedules driven by hand and the clock read outside a fiber, whose APIs differ between Effect 3
 * (`Schedule.driver`, `Schedule.union`, `Clock.unsafeCurrentTimeMillis`) and Effect 4 (a step
 * function that ends with `Cause.Done`, `Schedule.min`, `Clock.currentTimeMillisUnsafe`); this is
 * the Effect 4 side (`#line/schedule`). src/effect3/schedule.ts exports the same names.
 */
import { Effect, Pull, Schedule } from "effect"

/**
 * Recurs while either schedule does, after the shorter of their delays (Effect 3's
 * `Schedule.union`, Effect 4's `Schedule.min`).
 */
export const union = (
  self: Schedule.Schedule<unknown, unknown>,
  that: Schedule.Schedule<unknown, unknown>
): Schedule.Schedule<unknown, unknown> => Schedule.min([self, that])

/** A schedule driven step by step by its one user (the restarts of one worker). */
export interface Driver {
  /** Waits for the schedule's next delay: true, or false at once when the schedule ended. */
  readonly next: Effect.Effect<boolean>
  /** Starts the schedule over, as new. */
  readonly reset: Effect.Effect<void>
}

/**
 * A driver of `schedule`, each step on the fiber's clock. A step function holds its schedule's
 * state, so a new one is the schedule started over.
 */
export const driver = (schedule: Schedule.Schedule<unknown, unknown>): Effect.Effect<Driver> =>
  Effect.map(Schedule.toStepWithSleep(schedule), (first) => {
    let step = first
    return {
      next: Effect.suspend(() =>
        Pull.matchEffect(step(undefined), {
          onSuccess: () => Effect.succeed(true),
          onFailure: Effect.failCause,
          onDone: () => Effect.succeed(false)
        })
      ),
      reset: Effect.map(Schedule.toStepWithSleep(schedule), (fresh) => {
        step = fresh
      })
    }
  })

/**
 * What reads the fiber's clock (a `TestClock` in tests) in milliseconds, for code called outside
 * any fiber (a Node callback).
 */
export const clockMillis: Effect.Effect<() => number> = Effect.clockWith((clock) =>
  Effect.succeed(() => clock.currentTimeMillisUnsafe())
)
