/**
 * What the guarantee tests (connections, listeners, the proxy) need whose name differs between
 * the Effect lines; this is the Effect 4 side (`#test-line/guarantees`). test/effect3/lib/guarantees.ts
 * exports the same names.
 */
import { Effect, Metric } from "effect"
import type { Fiber } from "effect"

/** Forks `self` as a child of the current fiber: interrupted when the parent ends. */
export const fork = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<Fiber.Fiber<A, E>, never, R> =>
  Effect.forkChild(self)

/** What {@link countingStarts} gives: `track` runs an effect with every fiber it starts counted. */
export interface Starts {
  readonly track: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** How many fibers started so far in `track`, ended or not. */
  readonly count: () => number
}

/**
 * A counter of the fibers that start inside its `track`. Effect 4 has no supervisors: every fiber
 * forked in the region inherits its fiber runtime metrics service (`Metric.FiberRuntimeMetrics`),
 * as do root fibers run with the region's context (a connection's), and calls it at its start. A
 * service already there is still called.
 */
export const countingStarts = (): Starts => {
  let count = 0
  const track = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(Metric.FiberRuntimeMetrics, (outer) =>
      Effect.provideService(self, Metric.FiberRuntimeMetrics, {
        recordFiberStart: (context) => {
          count++
          outer?.recordFiberStart(context)
        },
        recordFiberEnd: (context, exit) => outer?.recordFiberEnd(context, exit)
      }))
  return { track, count: () => count }
}

/** Lets every other fiber ready to run go first (Effect 4: an effect). */
export const yieldNow: Effect.Effect<void> = Effect.yieldNow
