/**
 * The rules every option is checked against, written once: integers in a range, durations a timer
 * can hold, IPv4 hosts. Each check returns the value or what was wrong with it; the module that
 * owns the option turns that into its own typed error.
 */
import { decodeDurationUnknown } from "#line/types"
import { Duration, Option } from "effect"
import * as net from "node:net"
import * as Checked from "./checked.js"

/**
 * An option that failed its check.
 *
 * @internal
 */
export interface Invalid {
  readonly option: string
  readonly value: unknown
  readonly expected: string
}

/**
 * The longest delay a timer can hold: Node's `setTimeout` and Effect's clock both take at most
 * 2^31 - 1 ms. Past it, Node fires at once (with a warning) and Effect's clock never fires, so a
 * longer timeout would silently mean "now" or "forever".
 *
 * @internal
 */
export const maxTimerMillis = 2 ** 31 - 1

const maxTimer = Duration.format(Duration.millis(maxTimerMillis))

/** @internal */
export const integer = (
  option: string,
  value: unknown,
  min: number,
  max = 2 ** 31 - 1
): Checked.Checked<number, Invalid> =>
  // Stryker disable next-line ConditionalExpression: equivalent (Number.isInteger is false for a non-number); the typeof narrows the type
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max
    ? Checked.valid(value)
    : Checked.invalid({
      option,
      value,
      expected: max === 2 ** 31 - 1
        ? (min === 1 ? "a positive integer below 2^31" : `an integer from ${min} to 2^31 - 1`)
        : `an integer from ${min} to ${max}`
    })

/**
 * A duration from Effect's `DurationInput`, finite and within a timer's range; at least 1 ms
 * unless `zero` is allowed. A negative input is refused, not read as zero.
 *
 * @internal
 */
export const duration = (
  option: string,
  value: unknown,
  zero: "zero allowed" | "positive"
): Checked.Checked<Duration.Duration, Invalid> => {
  const invalid = Checked.invalid<Invalid>({
    option,
    value,
    expected: `a duration from ${zero === "positive" ? "1ms" : "0ms"} to ${maxTimer}, such as 500ms, 5s or 1m`
  })
  if (
    // Stryker disable next-line ConditionalExpression: equivalent (a string below 0 starts with "-", refused next); the typeof narrows the type
    (typeof value === "number" && (Number.isNaN(value) || value < 0)) ||
    (typeof value === "string" && value.startsWith("-"))
  ) return invalid
  const decoded = decodeDurationUnknown(value)
  if (Option.isNone(decoded) || !Duration.isFinite(decoded.value)) return invalid
  const millis = Duration.toMillis(decoded.value)
  return millis > maxTimerMillis || (zero === "positive" && millis < 1) ? invalid : Checked.valid(decoded.value)
}

/**
 * The idle time before the first keepalive probe: Linux's `TCP_KEEPIDLE` is a whole number of
 * seconds from 1 to 32767. Node truncates a delay to whole seconds and passes 0 as "unchanged",
 * which Linux refuses (`EINVAL`, silently: the kernel's default then applies), so anything else
 * is refused here rather than quietly replaced by `net.ipv4.tcp_keepalive_time`.
 *
 * @internal
 */
export const keepAliveDelay = (option: string, value: unknown): Checked.Checked<Duration.Duration, Invalid> => {
  const invalid = Checked.invalid<Invalid>({
    option,
    value,
    expected: "a whole number of seconds from 1s to 32767s (TCP_KEEPIDLE)"
  })
  const checked = duration(option, value, "positive")
  if (checked._tag === "Invalid") return invalid
  const millis = Duration.toMillis(checked.value)
  // At least 1 ms (checked above), whole seconds: at least 1 s.
  return millis % 1000 === 0 && millis <= 32767_000 ? checked : invalid
}

/** An IPv4 address, or `localhost` (= 127.0.0.1). @internal */
export const ipv4 = (option: string, value: unknown): Checked.Checked<string, Invalid> => {
  const host = value === "localhost" ? "127.0.0.1" : value
  // Stryker disable next-line ConditionalExpression: equivalent (net.isIPv4 is false for a non-string); the typeof narrows the type
  return typeof host === "string" && net.isIPv4(host)
    ? Checked.valid(host)
    : Checked.invalid({ option, value, expected: "an IPv4 address such as 127.0.0.1, or localhost" })
}

/**
 * JSON for strings and objects, but NaN and Infinity as themselves (JSON would say null), and a
 * `Duration` as people write one (`1d 2h`), not as its JSON object. @internal
 */
export const showValue = (value: unknown): string =>
  typeof value === "number"
    ? String(value)
    : Duration.isDuration(value)
    ? Duration.format(value)
    : JSON.stringify(value) ?? String(value)
