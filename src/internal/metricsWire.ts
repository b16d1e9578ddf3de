/**
 * Metrics as plain data (`Series`): what `Prometheus` writes, what a worker sends over the IPC
 * channel (structured clone: numbers, bigints, arrays), and what the primary sums for one
 * exposition of the whole service. Effect's own snapshots differ between Effect 3 (`MetricPair`s)
 * and Effect 4 (`Metric.Snapshot`s); only `#line/metrics` reads them.
 */
import { snapshotUnsafe } from "#line/metrics"

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
      /** The error margin of Effect 3's summaries; Effect 4's have none. */
      readonly error?: number
      readonly quantiles: ReadonlyArray<readonly [number, number | undefined]>
      readonly count: number
      readonly min: number
      readonly max: number
      readonly sum: number
    }
  )

/** Every metric of the process's registry now, as plain data. @internal */
export const snapshot = (): Array<Series> => snapshotUnsafe()

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

// Two series of one identity, whose kind is part of it: `b.kind` is `a.kind`, checked again for the types.
const combine = (a: Series, b: Series): Series | undefined => {
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent (b.kind is a.kind)
  if (a.kind === "counter" && b.kind === "counter") return { ...a, value: add(a.value, b.value) }
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent (b.kind is a.kind)
  if (a.kind === "gauge" && b.kind === "gauge") return { ...a, value: add(a.value, b.value) }
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent (b.kind is a.kind)
  if (a.kind === "frequency" && b.kind === "frequency") {
    const occurrences = new Map(a.occurrences)
    for (const [word, n] of b.occurrences) occurrences.set(word, (occurrences.get(word) ?? 0) + n)
    return { ...a, occurrences: Array.from(occurrences) }
  }
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent (b.kind is a.kind; a summary is never combined)
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

/** The value of the untagged series `name` of a counter or gauge, or 0. @internal */
export const valueOf = (all: ReadonlyArray<Series>, name: string): number => {
  const found = all.find((series) => series.name === name && series.tags.length === 0)
  return found !== undefined && (found.kind === "counter" || found.kind === "gauge") ? Number(found.value) : 0
}
