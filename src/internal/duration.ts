/**
 * Durations as people type them on a command line: `500ms`, `5s`, `1m`, `2h`, also Effect's own
 * forms (`5 seconds`).
 *
 * @internal
 */
import { Duration, Option } from "effect"

const units: Record<string, (n: number) => Duration.Duration> = {
  ms: Duration.millis,
  s: Duration.seconds,
  m: Duration.minutes,
  h: Duration.hours
}

/** @internal */
export const parse = (text: string): Option.Option<Duration.Duration> => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/.exec(text)
  if (match !== null) return Option.some(units[match[2]!]!(Number(match[1])))
  const decoded = Duration.decodeUnknown(text)
  return Option.filter(decoded, Duration.isFinite)
}
