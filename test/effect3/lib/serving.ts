/**
 * What the server's tests ask of Effect where Effect 3 and Effect 4 differ: a counter's value
 * under a reason, metric labels set for an effect or a layer, log levels by name, a scheduler that yields
 * often, causes made of several. This is the
 * Effect 3 side (`#test-line/serving`); test/effect4/lib/serving.ts exports the same names.
 */
import { Cause, Effect, FiberId, FiberRef, Layer, Logger, LogLevel, Metric, MetricLabel, Scheduler } from "effect"
import type { LevelName } from "../../../src/effect3/log.js"
import type { Counter } from "../../../src/effect3/metrics.js"

/** A counter's value, under a `reason` label when given (the server's counters are global: read deltas). */
export const counter = (metric: Counter, reason?: string): Effect.Effect<number> =>
  Metric.value(reason === undefined ? metric : Metric.taggedWithLabels(metric, [MetricLabel.make("reason", reason)]))
    .pipe(Effect.map((state) => state.count))

/**
 * `self` with the metric label `key` = `value` added to its fiber's (`Effect.tagMetrics`): a server
 * started in it labels its metrics so, and a metric read in it is read under that label.
 */
export const withMetricLabel = (key: string, value: string) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.tagMetrics(self, key, value)

/** `layer`, built with the metric label `key` = `value` added to the building fiber's. */
export const layerWithMetricLabel =
  (key: string, value: string) => <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
    Layer.locallyWith(layer, FiberRef.currentMetricLabels, (labels) => [...labels, MetricLabel.make(key, value)])

/** Effect's log level by the name `--log-level` takes (`Warning` for Effect 3's `Warning`). */
export const logLevel = (name: LevelName): LogLevel.LogLevel => LogLevel.fromLiteral(name)

/** Every one of Effect's log levels, from the lowest, by the name `--log-level` takes. */
export const allLogLevels: ReadonlyArray<readonly [LevelName, LogLevel.LogLevel]> = LogLevel.allLevels.map((
  level
) => [level._tag, level])

/** Runs `self` with Effect's log level `name` as its minimum. */
export const withMinimumLogLevel = (name: LevelName) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Logger.withMinimumLogLevel(self, logLevel(name))

/**
 * `self` on a scheduler that runs each task from a timer, its fibers yielding every `ops`
 * operations: what opens the gap between a fiber's check of a socket and its parking.
 */
export const yieldingThroughTimers = (ops: number) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.withScheduler(Scheduler.timer(0)), Effect.withMaxOpsBeforeYield(ops))

/** `left` and `right` at once (Effect 3: a parallel cause). */
export const bothCauses = <E1, E2>(left: Cause.Cause<E1>, right: Cause.Cause<E2>): Cause.Cause<E1 | E2> =>
  Cause.parallel<E1, E2>(left, right)

/** `left`, then `right` (Effect 3: a sequential cause). */
export const thenCause = <E1, E2>(left: Cause.Cause<E1>, right: Cause.Cause<E2>): Cause.Cause<E1 | E2> =>
  Cause.sequential<E1, E2>(left, right)

/** An interruption, by no fiber in particular. */
export const interruption: Cause.Cause<never> = Cause.interrupt(FiberId.none)
