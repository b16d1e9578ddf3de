/**
 * What the server's tests ask of Effect where Effect 3 and Effect 4 differ: a counter's value
 * under a reason, metric labels set for an effect or a layer, log levels by name, a scheduler that yields
 * often, causes made of several. This is the
 * Effect 4 side (`#test-line/serving`); test/effect3/lib/serving.ts exports the same names.
 */
import { Cause, Effect, Layer, LogLevel, Metric, References, Scheduler } from "effect"
import type { LevelName } from "../../../src/effect4/log.js"
import type { Counter } from "../../../src/effect4/metrics.js"

/** A counter's value, under a `reason` attribute when given (the server's counters are global: read deltas). */
export const counter = (metric: Counter, reason?: string): Effect.Effect<number> =>
  Metric.value(reason === undefined ? metric : Metric.withAttributes(metric, { reason }))
    .pipe(Effect.map((state) => state.count))

/**
 * `self` with the metric attribute `key` = `value` added to its fiber's
 * (`Metric.CurrentMetricAttributes`): a server started in it labels its metrics so, and a metric
 * read in it is read under that attribute.
 */
export const withMetricLabel = (key: string, value: string) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.updateService(self, Metric.CurrentMetricAttributes, (attributes) => ({ ...attributes, [key]: value }))

/** `layer`, built with the metric attribute `key` = `value` added to the building fiber's. */
export const layerWithMetricLabel =
  (key: string, value: string) => <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
    Layer.updateService(layer, Metric.CurrentMetricAttributes, (attributes) => ({ ...attributes, [key]: value }))

/** Effect's log level by the name `--log-level` takes (`Warning` for Effect 4's `Warn`). */
export const logLevel = (name: LevelName): LogLevel.LogLevel => name === "Warning" ? "Warn" : name

/** Every one of Effect's log levels, from the lowest, by the name `--log-level` takes. */
export const allLogLevels: ReadonlyArray<readonly [LevelName, LogLevel.LogLevel]> = [...LogLevel.values].sort(
  LogLevel.Order
).map((
  level
) => [level === "Warn" ? "Warning" : level, level])

/** Runs `self` with Effect's log level `name` as its minimum. */
export const withMinimumLogLevel = (name: LevelName) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, References.MinimumLogLevel, logLevel(name))

// Effect 3's `Scheduler.timer(0)`: every task run from its own timer.
const timer = new Scheduler.MixedScheduler("async", (f) => {
  const handle = setTimeout(f, 0)
  return () => clearTimeout(handle)
})

/**
 * `self` on a scheduler that runs each task from a timer, its fibers yielding every `ops`
 * operations: what opens the gap between a fiber's check of a socket and its parking.
 */
export const yieldingThroughTimers = (ops: number) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provideService(Scheduler.Scheduler, timer), Effect.provideService(Scheduler.MaxOpsBeforeYield, ops))

/** `left` and `right` at once (Effect 4: one cause with the reasons of both). */
export const bothCauses = <E1, E2>(left: Cause.Cause<E1>, right: Cause.Cause<E2>): Cause.Cause<E1 | E2> =>
  Cause.combine(left, right)

/** `left`, then `right` (Effect 4 has no order between a cause's reasons but their place in the list). */
export const thenCause = <E1, E2>(left: Cause.Cause<E1>, right: Cause.Cause<E2>): Cause.Cause<E1 | E2> =>
  Cause.combine(left, right)

/** An interruption, by no fiber in particular. */
export const interruption: Cause.Cause<never> = Cause.interrupt()
