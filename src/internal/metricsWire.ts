/**
 * Metrics across processes: a worker's snapshot as plain data for the IPC channel (structured
 * clone: numbers, bigints, arrays), and the sum of every worker's snapshot as Effect `MetricPair`s,
 * so that the primary serves one exposition for the whole service with `Prometheus.format`.
 */
import { MetricBoundaries, MetricKey, MetricKeyType, MetricLabel, MetricPair, MetricState, Option } from "effect"

/** One series of a snapshot, as plain data. @internal */
export type Series =
  & {
    readonly name: string
    readonly description: string | undefined
    readonly tags: ReadonlyArray<readonly [string, string]>
  }
  & (
    | { readonly kind: "counter"; readonly incremental: boolean; readonly value: number | bigint }
    | { readonly kind: "gauge"; readonly value: number | bigint }
    | {
      readonly kind: "histogram"
      readonly buckets: ReadonlyArray<readonly [number, number]>
      readonly count: number
      readonly min: number
      readonly max: number
      readonly sum: number
    }
    | { readonly kind: "frequency"; readonly occurrences: ReadonlyArray<readonly [string, number]> }
    | {
      readonly kind: "summary"
      readonly error: number
      readonly quantiles: ReadonlyArray<readonly [number, number | undefined]>
      readonly count: number
      readonly min: number
      readonly max: number
      readonly sum: number
    }
  )

/**
 * A snapshot as plain data. Effect's own runtime metrics (`effect_fiber_*`) are left out, as the
 * exposition leaves them out.
 *
 * @internal
 */
export const encode = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): Array<Series> => {
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
    } else if (MetricState.isSummaryState(state)) {
      const { count, error, max, min, sum } = state
      const quantiles = state.quantiles.map(([q, v]) => [q, Option.getOrUndefined(v)] as const)
      out.push({ ...base, kind: "summary", error, quantiles, count, min, max, sum })
    }
  }
  return out
}

const add = (a: number | bigint, b: number | bigint): number | bigint =>
  typeof a === "bigint" || typeof b === "bigint" ? BigInt(a) + BigInt(b) : a + b

const identity = (series: Series) => JSON.stringify([series.kind, series.name, series.tags])

/**
 * The sum of several snapshots, series by series (same kind, name and tags): counters, gauges,
 * histograms (bucket by bucket, when their buckets agree) and frequencies add up. What cannot be
 * added, a summary's quantiles or histograms with other buckets, is kept per snapshot, told
 * apart by `label` (the snapshot's index gives its value).
 *
 * @internal
 */
export const sum = (
  snapshots: ReadonlyArray<{ readonly label: string; readonly series: ReadonlyArray<Series> }>
): Array<Series> => {
  const merged = new Map<string, Series>()
  const apart: Array<Series> = []
  for (const { label, series: all } of snapshots) {
    for (const series of all) {
      const id = identity(series)
      const found = merged.get(id)
      if (found === undefined) {
        if (series.kind === "summary") apart.push({ ...series, tags: [...series.tags, ["worker", label]] })
        else merged.set(id, series)
        continue
      }
      const combined = combine(found, series)
      if (combined === undefined) apart.push({ ...series, tags: [...series.tags, ["worker", label]] })
      else merged.set(id, combined)
    }
  }
  return [...merged.values(), ...apart]
}

const combine = (a: Series, b: Series): Series | undefined => {
  if (a.kind === "counter" && b.kind === "counter") return { ...a, value: add(a.value, b.value) }
  if (a.kind === "gauge" && b.kind === "gauge") return { ...a, value: add(a.value, b.value) }
  if (a.kind === "frequency" && b.kind === "frequency") {
    const occurrences = new Map(a.occurrences)
    for (const [word, n] of b.occurrences) occurrences.set(word, (occurrences.get(word) ?? 0) + n)
    return { ...a, occurrences: Array.from(occurrences) }
  }
  if (a.kind === "histogram" && b.kind === "histogram") {
    if (a.buckets.length !== b.buckets.length || a.buckets.some(([le], i) => le !== b.buckets[i]![0])) return undefined
    return {
      ...a,
      buckets: a.buckets.map(([le, n], i) => [le, n + b.buckets[i]![1]] as const),
      count: a.count + b.count,
      min: Math.min(a.min, b.min),
      max: Math.max(a.max, b.max),
      sum: a.sum + b.sum
    }
  }
  return undefined
}

/**
 * Back to Effect's `MetricPair`s, which `Prometheus.format` writes: a key of the series' kind,
 * with its tags, and its state.
 *
 * @internal
 */
export const decode = (all: ReadonlyArray<Series>): Array<MetricPair.MetricPair.Untyped> =>
  all.map((series) => {
    const labels = series.tags.map(([key, value]) => MetricLabel.make(key, value))
    const options = series.description === undefined ? {} : { description: series.description }
    switch (series.kind) {
      case "counter": {
        const { incremental, name, value } = series
        return typeof value === "bigint"
          ? MetricPair.unsafeMake(
            MetricKey.taggedWithLabels(MetricKey.counter(name, { ...options, incremental, bigint: true }), labels),
            MetricState.counter(value)
          )
          : MetricPair.unsafeMake(
            MetricKey.taggedWithLabels(MetricKey.counter(name, { ...options, incremental }), labels),
            MetricState.counter(value)
          )
      }
      case "gauge": {
        const { name, value } = series
        return typeof value === "bigint"
          ? MetricPair.unsafeMake(
            MetricKey.taggedWithLabels(MetricKey.gauge(name, { ...options, bigint: true }), labels),
            MetricState.gauge(value)
          )
          : MetricPair.unsafeMake(
            MetricKey.taggedWithLabels(MetricKey.gauge(name, options), labels),
            MetricState.gauge(value)
          )
      }
      case "histogram": {
        const boundaries = MetricBoundaries.fromIterable(series.buckets.map(([le]) => le))
        const key = MetricKey.histogram(series.name, boundaries, series.description)
        const { buckets, count, max, min, sum } = series
        return MetricPair.unsafeMake(
          MetricKey.taggedWithLabels(key, labels),
          MetricState.histogram({ buckets, count, min, max, sum })
        )
      }
      case "frequency": {
        const key = MetricKey.frequency(series.name, options)
        return MetricPair.unsafeMake(
          MetricKey.taggedWithLabels(key, labels),
          MetricState.frequency(new Map(series.occurrences))
        )
      }
      case "summary": {
        const key = MetricKey.summary({
          name: series.name,
          maxAge: "1 minute",
          maxSize: 1,
          error: series.error,
          quantiles: series.quantiles.map(([q]) => q),
          ...options
        })
        const { count, error, max, min, sum } = series
        return MetricPair.unsafeMake(
          MetricKey.taggedWithLabels(key, labels),
          MetricState.summary({
            error,
            quantiles: series.quantiles.map(([q, v]) => [q, Option.fromNullable(v)] as const),
            count,
            min,
            max,
            sum
          })
        )
      }
    }
  })

/** The value of the untagged series `name` of a counter or gauge, or 0. @internal */
export const valueOf = (all: ReadonlyArray<Series>, name: string): number => {
  const found = all.find((series) => series.name === name && series.tags.length === 0)
  return found !== undefined && (found.kind === "counter" || found.kind === "gauge") ? Number(found.value) : 0
}
