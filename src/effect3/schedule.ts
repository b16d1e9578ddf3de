/**
 * Schedules driven by hand and the clock read outside a fiber, whose APIs differ between Effect 3
 * (`Schedule.driver`, `Schedule.union`, `Clock.unsafeCurrentTimeMillis`) and Effect 4 (a step
 * function that ends with `Cause.Done`, `Schedule.min`, `Clock.currentTimeMillisUnsafe`); this is
 * the Effect 3 side (`#line/schedule`). src/effect4/schedule.ts exports the same names.
 */
import { Effect, Option, Schedule } from "effect"

/**
 * Recurs while either schedule does, after the shorter of their delays (Effect 3's
 * `Schedule.union`, Effect 4's `Schedule.min`).
 */
export const union = (
  self: Schedule.Schedule<unknown, unknown>,
  that: Schedule.Schedule<unknown, unknown>
): Schedule.Schedule<unknown, unknown> => Schedule.union(self, that)

/** A schedule driven step by step by its one user (the restarts of one worker). */
export interface Driver {
  /** Waits for the schedule's next delay: true, or false at once when the schedule ended. */
  readonly next: Effect.Effect<boolean>
  /** Starts the schedule over, as new. */
  readonly reset: Effect.Effect<void>
}

/** A driver of `schedule`, each step on the fiber's clock. */
export const driver = (schedule: Schedule.Schedule<unknown, unknown>): Effect.Effect<Driver> =>
  Effect.map(Schedule.driver(schedule), (driver) => ({
    next: Effect.map(Effect.option(driver.next(undefined)), Option.isSome),
    reset: driver.reset
  }))

/**
 * What reads the fiber's clock (a `TestClock` in tests) in milliseconds, for code called outside
 * any fiber (a Node callback).
 */
export const clockMillis: Effect.Effect<() => number> = Effect.map(
  Effect.clock,
  (clock) => () => clock.unsafeCurrentTimeMillis()
)
