/**
 * What the guarantee tests (connections, listeners, the proxy) need whose name differs between
 * the Effect lines; this is the Effect 3 side (`#test-line/guarantees`). test/effect4/lib/guarantees.ts
 * exports the same names.
 */
import { Effect, Supervisor } from "effect"
import type { Fiber } from "effect"

/** Forks `self` as a child of the current fiber: interrupted when the parent ends. */
export const fork = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<Fiber.RuntimeFiber<A, E>, never, R> =>
  Effect.fork(self)

/** What {@link countingStarts} gives: `track` runs an effect with every fiber it starts counted. */
export interface Starts {
  readonly track: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** How many fibers started so far in `track`, ended or not. */
  readonly count: () => number
}

// Effect 3's supervisor sees every fiber that starts in the region it supervises, root fibers run
// with the region's fiber refs (a connection's) among them.
class StartCounter extends Supervisor.AbstractSupervisor<number> {
  count = 0
  get value() {
    return Effect.sync(() => this.count)
  }
  override onStart() {
    this.count++
  }
}

/** A counter of the fibers that start inside its `track`. */
export const countingStarts = (): Starts => {
  const counter = new StartCounter()
  return { track: (self) => Effect.supervised(self, counter), count: () => counter.count }
}

/** Lets every other fiber ready to run go first (Effect 3: a function). */
export const yieldNow: Effect.Effect<void> = Effect.yieldNow()
