/**
 * What the test kit asks of Effect beyond the runtime's common helpers: the fibers a server under
 * test forks, counted; an effect run in a scope of the caller's. This is the Effect 3 side
 * (`#line/kit`); src/effect4/kit.ts exports the same names.
 */
import { Effect, Scope, Supervisor } from "effect"
import type { Exit, Fiber } from "effect"

/**
 * The fibers forked inside {@link FiberTracker.track}: its children, theirs, and the root fibers
 * run with its services (a connection's, forked from a Node callback), whether or not a parent
 * waits for them.
 */
export interface FiberTracker {
  /** `self`, with every fiber it forks tracked. */
  readonly track: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** How many tracked fibers still run. */
  readonly alive: Effect.Effect<number>
}

/**
 * Effect 3's supervisor sees every fiber that starts in the region it supervises (the root fibers
 * too: they start with the region's fiber refs), and every one that ends.
 */
class Tracker extends Supervisor.AbstractSupervisor<number> {
  readonly fibers = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  // One step, as the `value` of Effect's own tracker is: a simulation's trace follows where
  // fibers yield, and they yield after a fixed count of steps.
  readonly value: Effect.Effect<number> = Effect.sync(() => this.fibers.size)
  override onStart<A, E, R>(
    _context: unknown,
    _effect: Effect.Effect<A, E, R>,
    _parent: unknown,
    fiber: Fiber.RuntimeFiber<A, E>
  ): void {
    this.fibers.add(fiber)
  }
  override onEnd<A, E>(_exit: Exit.Exit<A, E>, fiber: Fiber.RuntimeFiber<A, E>): void {
    this.fibers.delete(fiber)
  }
}

/** A tracker of its own, tracking nothing until an effect runs in its `track`. */
export const trackFibers: Effect.Effect<FiberTracker> = Effect.sync(() => {
  const tracker = new Tracker()
  return { track: (self) => Effect.supervised(self, tracker), alive: tracker.value }
})

/** `self` in `scope`: what it adds to its scope is added to `scope`, closed when `scope` closes. */
export const extendScope = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  scope: Scope.Scope
): Effect.Effect<A, E, Exclude<R, Scope.Scope>> => Scope.extend(self, scope)
