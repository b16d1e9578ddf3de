/**
 * What the test kit asks of Effect beyond the runtime's common helpers: the fibers a server under
 * test forks, counted; an effect run in a scope of the caller's. This is the Effect 4 side
 * (`#line/kit`); src/effect3/kit.ts exports the same names.
 */
import { Effect, Metric, Scope } from "effect"

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
 * Effect 4 has no supervisors. What sees every fiber start and end is the fiber runtime metrics
 * service (`Metric.FiberRuntimeMetrics`): a reference of the context, which every fiber forked in
 * the region inherits, as do root fibers run with the region's context, and which each fiber calls
 * when it starts and when it ends. It is told the fiber's context, not the fiber, so the tracker
 * counts. A service already there (the user's runtime metrics) is still called.
 */
export const trackFibers: Effect.Effect<FiberTracker> = Effect.sync(() => {
  let alive = 0
  const track = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(Metric.FiberRuntimeMetrics, (outer) =>
      Effect.provideService(self, Metric.FiberRuntimeMetrics, {
        recordFiberStart: (context) => {
          alive++
          outer?.recordFiberStart(context)
        },
        recordFiberEnd: (context, exit) => {
          alive--
          outer?.recordFiberEnd(context, exit)
        }
      }))
  return { track, alive: Effect.sync(() => alive) }
})

/** `self` in `scope`: what it adds to its scope is added to `scope`, closed when `scope` closes. */
export const extendScope = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  scope: Scope.Scope
): Effect.Effect<A, E, Exclude<R, Scope.Scope>> => Scope.provide(scope)(self)
