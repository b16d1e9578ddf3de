/**
 * The server's use of Effect's metrics where Effect 3 and Effect 4 differ: making metrics and
 * registering their series at zero, the labels a server's updates carry (a fiber's
 * `MetricLabel`s here, a `Context` with `Metric.CurrentMetricAttributes` on Effect 4), updates
 * from Node's callbacks, and reading the registry as plain data (`Series`). This is the Effect 3
 * side (`#line/metrics`); src/effect4/metrics.ts exports the same names.
 *
 * Not an entry point of the package, but its types appear in public signatures (the metrics'
 * types, `Prometheus.format`'s input), so only what the server alone uses is marked internal.
 */
import {
  Array as Arr,
  Effect,
  FiberRef,
  Metric,
  MetricBoundaries,
  MetricKeyType,
  MetricLabel,
  MetricState,
  Option
} from "effect"
import type { MetricPair } from "effect"
import type { Series } from "../internal/metricsWire.js"

/** A counter of numbers. */
export type Counter = Metric.Metric.Counter<number>

/** A gauge of numbers. */
export type Gauge = Metric.Metric.Gauge<number>

/** A histogram of numbers. */
export type Histogram = Metric.Metric.Histogram<number>

/** A histogram's buckets. */
export type Boundaries = MetricBoundaries.MetricBoundaries

/** One metric series of a snapshot of the registry, as Effect gives it. */
export type Snapshot = MetricPair.MetricPair.Untyped

/** A counter, not registered. @internal */
export const counter = (name: string, options: {
  readonly description: string
  readonly incremental: boolean
}): Counter => Metric.counter(name, options)

/** A gauge, not registered. @internal */
export const gauge = (name: string, options: { readonly description: string }): Gauge => Metric.gauge(name, options)

/** A histogram, not registered. @internal */
export const histogram = (name: string, options: {
  readonly description: string
  readonly boundaries: Boundaries
}): Histogram => Metric.histogram(name, options.boundaries, options.description)

/** `count` buckets: `start`, then each `factor` times the one before, then `+Inf`. @internal */
export const exponentialBoundaries = (options: {
  readonly start: number
  readonly factor: number
  readonly count: number
}): Boundaries => MetricBoundaries.exponential(options)

/** The metric's series with the label `key` set to `value` (`Metric.tagged`). @internal */
export const tagged = <Type, In, Out>(
  metric: Metric.Metric<Type, In, Out>,
  key: string,
  value: string
): Metric.Metric<Type, In, Out> => Metric.tagged(metric, key, value)

/**
 * Registers the metric's series at zero in the process's registry, so that an exporter shows it
 * before its first update. Returns the metric.
 *
 * @internal
 */
export const register = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>): Metric.Metric<Type, In, Out> =>
  metric.register()

/** The labels one update carries, beside the metric's own. @internal */
export type Tags = ReadonlyArray<MetricLabel.MetricLabel>

/** An update with no labels but the metric's own. @internal */
export const unlabelled: Tags = []

/** Updates the metric with `value` under `tags`, outside any fiber (a counter adds it, a gauge takes it). @internal */
export const updateUnsafe = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, value: In, tags: Tags): void =>
  metric.unsafeUpdate(value, tags)

/** Changes the metric by `delta` under `tags`, outside any fiber (a gauge adds it). @internal */
export const modifyUnsafe = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, delta: In, tags: Tags): void =>
  metric.unsafeModify(delta, tags)

/**
 * The labels one server adds to every metric it updates: the labels of the fiber that started it
 * (`Effect.tagMetrics`, `Effect.labelMetrics`), alone (`base`) and with each `reason`; `none`
 * for a metric of the process rather than of one server. Built once per server; each array keeps
 * its identity, so Effect finds the metric's labelled hook in a cache instead of the registry on
 * every update.
 *
 * @internal
 */
export interface Labels {
  readonly base: Tags
  readonly none: Tags
  readonly reason: (reason: string) => Tags
}

const labels = (base: Tags): Labels => {
  const byReason = new Map<string, Tags>()
  return {
    base,
    none: unlabelled,
    reason: (reason) => {
      let tags = byReason.get(reason)
      // In Effect's own order: `Metric.tagged(m, "reason", r)` updated or read in a labelled fiber
      // is the union of its tag and the fiber's labels, and a key's labels compare in order.
      if (tags === undefined) byReason.set(reason, tags = Arr.union([MetricLabel.make("reason", reason)], base))
      return tags
    }
  }
}

/** The {@link Labels} of the current fiber. @internal */
export const currentLabels: Effect.Effect<Labels> = Effect.map(FiberRef.get(FiberRef.currentMetricLabels), labels)

/**
 * A snapshot as plain data. Effect's own runtime metrics (`effect_fiber_*`) are left out: they
 * count every fiber of the process, carry no description, and time fibers in milliseconds.
 *
 * @internal
 */
export const encode = (pairs: ReadonlyArray<Snapshot>): Array<Series> => {
  const out: Array<Series> = []
  for (const { metricKey: key, metricState: state } of pairs) {
    if (key.name.startsWith("effect_fiber_")) continue
    const base = {
      name: key.name,
      description: Option.getOrUndefined(key.description),
      tags: key.tags.map((tag) => [tag.key, tag.value] as const)
    }
    if (MetricState.isCounterState(state)) {
      const incremental = MetricKeyType.isCounterKey(key.keyType) && key.keyType.incremental
      out.push({ ...base, kind: "counter", incremental, value: state.count as number | bigint })
    } else if (MetricState.isGaugeState(state)) {
      out.push({ ...base, kind: "gauge", value: state.value as number | bigint })
    } else if (MetricState.isHistogramState(state)) {
      const { buckets, count, max, min, sum } = state
      out.push({ ...base, kind: "histogram", buckets, count, min, max, sum })
    } else if (MetricState.isFrequencyState(state)) {
      out.push({ ...base, kind: "frequency", occurrences: Array.from(state.occurrences) })
      // Stryker disable next-line ConditionalExpression: equivalent (a summary is the last of Effect's five metric states)
    } else if (MetricState.isSummaryState(state)) {
      const { count, error, max, min, sum } = state
      const quantiles = state.quantiles.map(([q, v]) => [q, Option.getOrUndefined(v)] as const)
      out.push({ ...base, kind: "summary", error, quantiles, count, min, max, sum })
    }
  }
  return out
}

/** Every series of the process's registry now, as plain data (see {@link encode}). @internal */
export const snapshotUnsafe = (): Array<Series> => encode(Metric.unsafeSnapshot())

/** Every series of the current fiber's registry (on Effect 3, the process's one). @internal */
export const snapshot: Effect.Effect<Array<Series>> = Effect.sync(snapshotUnsafe)
