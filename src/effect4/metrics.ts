/**
 * The server's use of Effect's metrics where Effect 3 and Effect 4 differ: making metrics and
 * registering their series at zero, the labels a server's updates carry (a `Context` with
 * `Metric.CurrentMetricAttributes` here, a fiber's `MetricLabel`s on Effect 3), updates from
 * Node's callbacks, and reading the registry as plain data (`Series`). This is the Effect 4 side
 * (`#line/metrics`); src/effect3/metrics.ts exports the same names.
 *
 * On Effect 4 an update takes a `Context`, and reads from it both the registry
 * (`Metric.MetricRegistry`) and the attributes it adds to the metric's own
 * (`Metric.CurrentMetricAttributes`). A server captures them from the fiber that starts it, so
 * its metrics go to the registry that fiber uses, under the attributes it was given.
 *
 * Not an entry point of the package, but its types appear in public signatures (the metrics'
 * types, `Prometheus.format`'s input), so only what the server alone uses is marked internal.
 */
import { Context, Effect, Metric } from "effect"
import type { Series } from "../internal/metricsWire.js"

/** A counter of numbers. */
export type Counter = Metric.Counter<number>

/** A gauge of numbers. */
export type Gauge = Metric.Gauge<number>

/** A histogram of numbers. */
export type Histogram = Metric.Histogram<number>

/** A histogram's buckets: their upper bounds, in order, the last `+Inf`. */
export type Boundaries = ReadonlyArray<number>

/** One metric series of a snapshot of the registry, as Effect gives it. */
export type Snapshot = Metric.Metric.Snapshot

// How to make each metric made here again (see `forTags`).
const makers = new WeakMap<Metric.Metric<never, unknown>, () => Metric.Metric<never, unknown>>()

const made = <M extends Metric.Metric<never, unknown>>(make: () => M): M => {
  const metric = make()
  makers.set(metric, make)
  return metric
}

/** A counter, not registered. @internal */
export const counter = (name: string, options: {
  readonly description: string
  readonly incremental: boolean
}): Counter => made(() => Metric.counter(name, options))

/** A gauge, not registered. @internal */
export const gauge = (name: string, options: { readonly description: string }): Gauge =>
  made(() => Metric.gauge(name, options))

/** A histogram, not registered. @internal */
export const histogram = (name: string, options: {
  readonly description: string
  readonly boundaries: Boundaries
}): Histogram => made(() => Metric.histogram(name, options))

/** `count` buckets: `start`, then each `factor` times the one before, then `+Inf`. @internal */
export const exponentialBoundaries = (options: {
  readonly start: number
  readonly factor: number
  readonly count: number
}): Boundaries => Metric.exponentialBoundaries(options)

/** The metric's series with the attribute `key` set to `value` (`Metric.withAttributes`). @internal */
export const tagged = <In, State>(
  metric: Metric.Metric<In, State>,
  key: string,
  value: string
): Metric.Metric<In, State> => Metric.withAttributes(metric, { [key]: value })

/**
 * Registers the metric's series at zero in the process's registry (the default
 * `Metric.MetricRegistry`), so that an exporter shows it before its first update: Effect 4
 * registers a series when it is first read. Returns the metric.
 *
 * @internal
 */
export const register = <In, State>(metric: Metric.Metric<In, State>): Metric.Metric<In, State> => {
  metric.valueUnsafe(Context.empty())
  return metric
}

/**
 * What one update is made with: the registry and the attributes it adds to the metric's own (in
 * `context`), and for each metric made here, one copy of it used with this context alone.
 *
 * @internal
 */
export interface Tags {
  readonly context: Context.Context<never>
  readonly copies: WeakMap<Metric.Metric<never, unknown>, Metric.Metric<never, unknown>>
}

const tags = (registry: Metric.MetricRegistry, attributes: Metric.Metric.AttributeSet): Tags => ({
  context: Context.make(Metric.MetricRegistry, registry).pipe(Context.add(Metric.CurrentMetricAttributes, attributes)),
  copies: new WeakMap()
})

/** An update with no attributes but the metric's own, in the process's registry. @internal */
export const unlabelled: Tags = tags(Context.get(Context.empty(), Metric.MetricRegistry), {})

/**
 * The metric to update under `tags`: its copy for them. A metric object caches the key of its
 * series for one attribute set, compared by identity, and computes it again (sorting and
 * serialising the attributes) when updated with another: updating one object from several
 * servers, or with several reasons, would do that on every update. A copy made by the same
 * constructor has the same series (the registry keys a series by name, description and
 * attributes) and sees one attribute set only. A metric not made here is used as it is.
 */
const forTags = <In, State>(metric: Metric.Metric<In, State>, tags: Tags): Metric.Metric<In, State> => {
  // The maps hold metrics of any input; a copy has the input and state of the metric it copies.
  const key = metric as Metric.Metric<never, unknown>
  let copy = tags.copies.get(key)
  if (copy === undefined) {
    copy = makers.get(key)?.() ?? key
    tags.copies.set(key, copy)
  }
  return copy as Metric.Metric<In, State>
}

/** Updates the metric with `value` under `tags`, outside any fiber (a counter adds it, a gauge takes it). @internal */
export const updateUnsafe = <In, State>(metric: Metric.Metric<In, State>, value: In, tags: Tags): void =>
  forTags(metric, tags).updateUnsafe(value, tags.context)

/** Changes the metric by `delta` under `tags`, outside any fiber (a gauge adds it). @internal */
export const modifyUnsafe = <In, State>(metric: Metric.Metric<In, State>, delta: In, tags: Tags): void =>
  forTags(metric, tags).modifyUnsafe(delta, tags.context)

/**
 * The attributes one server adds to every metric it updates: those of the fiber that started it
 * (`Effect.provideService(Metric.CurrentMetricAttributes, { server: "edge" })`), alone (`base`)
 * and with each `reason`, in the registry of that fiber; `none` for a metric of the process
 * rather than of one server (no attributes, the same registry). Built once per server.
 *
 * @internal
 */
export interface Labels {
  readonly base: Tags
  readonly none: Tags
  readonly reason: (reason: string) => Tags
}

const labels = (context: Context.Context<never>): Labels => {
  const registry = Context.get(context, Metric.MetricRegistry)
  const attributes = Context.get(context, Metric.CurrentMetricAttributes)
  const byReason = new Map<string, Tags>()
  return {
    base: tags(registry, attributes),
    none: tags(registry, {}),
    reason: (reason) => {
      let found = byReason.get(reason)
      if (found === undefined) {
        // `reason` first, then the server's own, as on Effect 3; the server's reason is the one
        // the metric counts by, so it wins over an attribute of the same name.
        const { reason: _, ...others } = attributes
        byReason.set(reason, found = tags(registry, { reason, ...others }))
      }
      return found
    }
  }
}

/** The {@link Labels} of the current fiber. @internal */
export const currentLabels: Effect.Effect<Labels> = Effect.map(Effect.context<never>(), labels)

// Effect's own runtime metrics, recorded only when enabled (`Metric.enableRuntimeMetrics`).
const runtimeMetrics: ReadonlySet<string> = new Set([
  "child_fibers_active",
  "child_fibers_started",
  "child_fiber_successes",
  "child_fiber_failures"
])

/**
 * A snapshot as plain data. Effect's own runtime metrics are left out: they count every fiber of
 * the process and carry no unit.
 *
 * @internal
 */
export const encode = (snapshots: ReadonlyArray<Snapshot>): Array<Series> => {
  const out: Array<Series> = []
  for (const snapshot of snapshots) {
    if (runtimeMetrics.has(snapshot.id)) continue
    const base = {
      name: snapshot.id,
      description: snapshot.description,
      tags: Object.entries(snapshot.attributes ?? {})
    }
    switch (snapshot.type) {
      case "Counter": {
        const { count, incremental } = snapshot.state
        out.push({ ...base, kind: "counter", incremental, value: count })
        break
      }
      case "Gauge": {
        out.push({ ...base, kind: "gauge", value: snapshot.state.value })
        break
      }
      case "Histogram": {
        const { buckets, count, max, min, sum } = snapshot.state
        out.push({ ...base, kind: "histogram", buckets, count, min, max, sum })
        break
      }
      case "Frequency": {
        out.push({ ...base, kind: "frequency", occurrences: Array.from(snapshot.state.occurrences) })
        break
      }
      case "Summary": {
        const { count, max, min, quantiles, sum } = snapshot.state
        out.push({ ...base, kind: "summary", quantiles, count, min, max, sum })
        break
      }
    }
  }
  return out
}

/** Every series of the process's registry (the default `Metric.MetricRegistry`) now, as plain data. @internal */
export const snapshotUnsafe = (): Array<Series> => encode(Metric.snapshotUnsafe(Context.empty()))

/** Every series of the current fiber's registry, as plain data. @internal */
export const snapshot: Effect.Effect<Array<Series>> = Effect.map(
  Effect.context<never>(),
  (context) => encode(Metric.snapshotUnsafe(context))
)
