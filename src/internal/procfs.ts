/**
 * Pure parsers for the text the kernel exposes under `/proc`. Each returns `undefined` when the
 * text does not have the expected shape, so the caller can raise one typed error with the path.
 */

const integer = /^-?\d+$/

/** @internal */
export const parseInteger = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (!integer.test(trimmed)) return undefined
  const value = Number(trimmed)
  return Number.isSafeInteger(value) ? value : undefined
}

/** Whitespace-separated integers, exactly `count` of them (`tcp_rmem`, `ip_local_port_range`). @internal */
export const parseIntegers = (text: string, count: number): ReadonlyArray<number> | undefined => {
  const fields = text.trim().split(/\s+/)
  if (fields.length !== count) return undefined
  const values: Array<number> = []
  for (const field of fields) {
    const value = parseInteger(field)
    if (value === undefined) return undefined
    values.push(value)
  }
  return values
}

/** A soft/hard pair from `/proc/<pid>/limits`; `unlimited` is `Infinity`. @internal */
export interface SoftHard {
  readonly soft: number
  readonly hard: number
}

const limitValue = (field: string): number | undefined =>
  field === "unlimited" ? Number.POSITIVE_INFINITY : parseInteger(field)

/**
 * Finds the line named `name` (e.g. "Max open files") in the text of `/proc/self/limits`.
 * Returns `null` when the line is absent (a kernel that does not report it), `undefined` when the
 * line is present but malformed.
 *
 * @internal
 */
export const parseLimitsLine = (text: string, name: string): SoftHard | null | undefined => {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue
    const fields = line.slice(name.length).trim().split(/\s+/)
    const soft = fields[0] === undefined ? undefined : limitValue(fields[0])
    const hard = fields[1] === undefined ? undefined : limitValue(fields[1])
    return soft === undefined || hard === undefined ? undefined : { soft, hard }
  }
  return null
}
