/**
 * The command line's one parser. Flags are data, each written once with its name, its `ECHO_*`
 * variable, its default and how its value is checked, and used for everything a user sees: the
 * parse of the command line (unknown, repeated or incomplete flags), the fallback to the
 * variable, the error that names the flag or the variable that was wrong, and `--help`. Values
 * are checked by the library's own rules (`internal/options.ts`).
 */
import { configString } from "#line/types"
import type { Duration } from "effect"
import { Config, Effect, Option } from "effect"
import * as Checked from "./checked.js"
import * as Options_ from "./options.js"
import * as Proxy from "./proxy.js"

/**
 * One flag. `placeholder` undefined: a switch, on with `--NAME`; with a variable, also off with
 * `--no-NAME`, which turns off what the variable turned on.
 *
 * @internal
 */
export interface Flag<A> {
  readonly name: string
  readonly variable: string | undefined
  readonly placeholder: string | undefined
  readonly description: string
  /** As `--help` states it; undefined: none worth stating. */
  readonly default: string | undefined
  /** The value, or what a valid one looks like. */
  readonly parse: (text: string) => Checked.Checked<A, string>
}

/** A command's flags, keyed as its handler reads them. @internal */
export type Table = Readonly<Record<string, Flag<any>>>

/** A flag that takes a value. @internal */
export const value = <A>(
  name: string,
  placeholder: string,
  parse: (text: string) => Checked.Checked<A, string>,
  description: string,
  options: { readonly variable?: string; readonly default?: string } = {}
): Flag<A> => ({ name, variable: options.variable, placeholder, description, default: options.default, parse })

/** A switch: on when given; its variable takes true/false, 1/0, yes/no or on/off. @internal */
export const switch_ = (name: string, description: string, variable?: string): Flag<boolean> => ({
  name,
  variable,
  placeholder: undefined,
  description,
  default: "off",
  parse: boolean
})

// --- Values, checked by the library's rules.

/** A decimal integer from `min` to `max`: no sign but `-`, no `0x`, no exponent, no fraction. @internal */
export const integer = (min: number, max: number) => (text: string): Checked.Checked<number, string> => {
  const expected = `an integer from ${min} to ${max}`
  if (!/^-?[0-9]+$/.test(text)) return Checked.invalid(expected)
  // Stryker disable next-line StringLiteral: equivalent (the option's name is in the message, replaced here)
  return Checked.mapError(Options_.integer("", Number(text), min, max), () => expected)
}

/** An IPv4 address or `localhost`. @internal */
export const ipv4 = (text: string): Checked.Checked<string, string> =>
  // Stryker disable next-line StringLiteral: equivalent (only what is expected is kept, not the option's name)
  Checked.mapError(Options_.ipv4("", text), (invalid) => invalid.expected)

/** One of `values`, in any case. @internal */
export const choice = <A extends string>(values: ReadonlyArray<A>) => (text: string): Checked.Checked<A, string> => {
  const found = values.find((v) => v === text.toLowerCase())
  return found === undefined ? Checked.invalid(`one of ${values.join(", ")}`) : Checked.valid(found)
}

/** @internal */
export const boolean = (text: string): Checked.Checked<boolean, string> => {
  const lower = text.toLowerCase()
  if (["true", "1", "yes", "on"].includes(lower)) return Checked.valid(true)
  if (["false", "0", "no", "off"].includes(lower)) return Checked.valid(false)
  return Checked.invalid("true or false (also 1/0, yes/no, on/off)")
}

/**
 * A comma-separated list of IPv4 networks (`10.0.0.0/8`) or addresses, as the PROXY protocol's
 * trusted sources: at least one, each checked by the library's own rule.
 *
 * @internal
 */
export const networks = (text: string): Checked.Checked<ReadonlyArray<string>, string> => {
  const expected = "a comma-separated list of IPv4 networks such as 10.0.0.0/8, or addresses"
  const parts = text.split(",").map((part) => part.trim())
  // An empty part (`10.0.0.0/8,`) is no network either.
  return parts.some((part) => Proxy.cidr(part)._tag === "Invalid") ? Checked.invalid(expected) : Checked.valid(parts)
}

/** Any text. @internal */
export const text = (text: string): Checked.Checked<string, string> => Checked.valid(text)

const units: Record<string, string> = {
  ms: "millis",
  s: "seconds",
  m: "minutes",
  h: "hours",
  d: "days"
}

/**
 * A duration as people type one (`500ms`, `5s`, `1.5m`, `2h`, `1d`) or in Effect's own words
 * (`5 seconds`), checked by `rule`: the library's, so that the command line accepts exactly what
 * the library does, with the same bounds (a negative duration is refused, not read as zero).
 *
 * @internal
 */
export const duration = (
  rule: (value: string) => Checked.Checked<Duration.Duration, Options_.Invalid>
) =>
(text: string): Checked.Checked<Duration.Duration, string> => {
  const short = /^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(text)
  const normalized = short === null ? text : `${short[1]} ${units[short[2]!]}`
  return Checked.mapError(rule(normalized), (invalid) => invalid.expected)
}

// --- Commands.

/**
 * A command: its flags, keyed as its handler reads them, and what `--help` says about it.
 *
 * @internal
 */
export interface Command<T extends Table = Table> {
  readonly name: string
  readonly summary: string
  readonly usage: string
  /** Paragraphs after the usage line. */
  readonly description: ReadonlyArray<string>
  readonly flags: T
  /** Sections after the flags: a title and its lines, kept as written. */
  readonly sections?: ReadonlyArray<{ readonly title: string; readonly lines: ReadonlyArray<string> }>
}

/**
 * What to do with a command line.
 *
 * @internal
 */
export type Parsed =
  | { readonly _tag: "Help"; readonly command: Command | undefined }
  | { readonly _tag: "Version" }
  | { readonly _tag: "Usage"; readonly message: string; readonly command: Command | undefined }
  | {
    readonly _tag: "Run"
    readonly command: Command
    /** Every flag given, by name: its checked value (`false` for a switch turned off). */
    readonly given: ReadonlyMap<string, unknown>
  }

/** A switch with a variable: `--no-NAME` turns off what the variable turned on. */
const negatable = (flag: Flag<unknown>): boolean => flag.placeholder === undefined && flag.variable !== undefined

/** A flag as written on the command line: which flag, and whether it is a switch's `--no-` form. */
const lookup = (command: Command, written: string): { flag: Flag<unknown>; off: boolean } | undefined => {
  for (const flag of Object.values(command.flags)) {
    if (written === `--${flag.name}`) return { flag, off: false }
    if (negatable(flag) && written === `--no-${flag.name}`) return { flag, off: true }
  }
  return undefined
}

/**
 * Parses a command line (without the node and script paths) against `commands`: one command,
 * then only its own flags, each at most once, each with a valid value. `--help` anywhere wins.
 *
 * @internal
 */
export const parse = (commands: ReadonlyArray<Command>, args: ReadonlyArray<string>): Parsed => {
  const named = commands.find((c) => args.includes(c.name))
  if (args.includes("--help") || args.includes("-h")) return { _tag: "Help", command: named }
  if (args.includes("--version")) return { _tag: "Version" }
  const names = commands.map((c) => c.name).join(", ")
  const [first, ...rest] = args
  if (first === undefined) return usage(`a command is needed: ${names}`)
  if (first.startsWith("-")) {
    const flag = first.split("=")[0]!
    const known = commands.some((c) => lookup(c, flag) !== undefined)
    return usage(
      known ? `${flag} goes after the command, e.g. effect-tcp-echo serve ${first}` : `unknown flag ${flag}`,
      named
    )
  }
  const command = commands.find((c) => c.name === first)
  if (command === undefined) return usage(`unknown command ${JSON.stringify(first)}: the commands are ${names}`)
  return parseFlags(command, rest)
}

const usage = (message: string, command?: Command): Parsed => ({ _tag: "Usage", message, command })

/** The flags after the command: each known to it, given once, with a valid value. */
const parseFlags = (command: Command, args: ReadonlyArray<string>): Parsed => {
  const given = new Map<string, unknown>()
  // How each flag given was written, for the message when it comes again.
  const written = new Map<string, string>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (!arg.startsWith("--")) {
      return usage(`unexpected argument ${JSON.stringify(arg)}: ${command.name} takes flags only`, command)
    }
    const eq = arg.indexOf("=")
    const name = eq === -1 ? arg : arg.slice(0, eq)
    const found = lookup(command, name)
    if (found === undefined) return usage(`unknown flag ${name} for ${command.name}`, command)
    const { flag, off } = found
    const before = written.get(flag.name)
    if (before !== undefined) {
      return usage(
        before === name
          ? `${name} is given more than once: give it once`
          : `${before} and ${name} are both given: give one`,
        command
      )
    }
    written.set(flag.name, name)
    if (flag.placeholder === undefined) {
      if (eq !== -1) return usage(`${name} takes no value (it is a switch)`, command)
      given.set(flag.name, !off)
      continue
    }
    const text = eq === -1 ? args[++i] : arg.slice(eq + 1)
    if (text === undefined) return usage(`${name} needs a value (${flag.placeholder})`, command)
    const parsed = flag.parse(text)
    if (parsed._tag === "Invalid") return usage(formatInvalid({ source: name, text, expected: parsed.error }), command)
    given.set(flag.name, parsed.value)
  }
  return { _tag: "Run", command, given }
}

/**
 * A flag's value was invalid: which flag or variable, what it held, and what a valid one looks
 * like.
 *
 * @internal
 */
export interface Invalid {
  /** `--port`, or `ECHO_PORT`. */
  readonly source: string
  readonly text: string
  readonly expected: string
}

/** Where a value came from, for messages: `--port`, `ECHO_PORT`, or undefined for the default. @internal */
export type Sources<T> = { readonly [K in keyof T]: string | undefined }

/** The values of a command's flags. @internal */
export type Values<T> = { readonly [K in keyof T]: T[K] extends Flag<infer A> ? Option.Option<A> : never }

/** A command's flags, resolved: each one's value and where it came from. @internal */
export interface Resolved<T> {
  readonly values: Values<T>
  readonly sources: Sources<T>
}

/**
 * Each flag's value: the flag's when given (`given`, from {@link parse}), else its variable's
 * (read through Effect's `Config`), else `None`; a variable's checked, so that an invalid one is
 * refused naming it.
 *
 * @internal
 */
export const resolve = <T extends Table>(
  flags: T,
  given: ReadonlyMap<string, unknown>
): Effect.Effect<Resolved<T>, Invalid> =>
  Effect.gen(function*() {
    const values: Record<string, Option.Option<unknown>> = {}
    const sources: Record<string, string | undefined> = {}
    for (const [key, flag] of Object.entries(flags)) {
      if (given.has(flag.name)) {
        values[key] = Option.some(given.get(flag.name))
        sources[key] = `--${flag.name}`
        continue
      }
      // Stryker disable next-line ConditionalExpression: equivalent (a config of no name reads nothing)
      const text = flag.variable === undefined
        ? Option.none()
        : yield* Effect.orDie(Config.option(configString(flag.variable)))
      sources[key] = Option.isSome(text) ? flag.variable : undefined
      if (Option.isNone(text)) {
        values[key] = Option.none()
        continue
      }
      const parsed = flag.parse(text.value)
      if (parsed._tag === "Invalid") {
        return yield* Effect.fail<Invalid>({ source: flag.variable!, text: text.value, expected: parsed.error })
      }
      values[key] = Option.some(parsed.value)
    }
    // Built key by key from `flags` above, so each key holds its flag's value type.
    return { values: values as Values<T>, sources: sources as Sources<T> }
  })

/** The one line for an invalid value. @internal */
export const formatInvalid = (invalid: Invalid): string =>
  `invalid ${invalid.source} ${JSON.stringify(invalid.text)}: expected ${invalid.expected}`

// --- Help, at most 80 columns wide.

const width = 80

/** `text` wrapped to `columns` (80 by default), each line indented by `indent`. @internal */
export const wrap = (text: string, indent: string, first = indent, columns = width): Array<string> => {
  const lines: Array<string> = []
  let line = first
  let empty = true
  // Stryker disable next-line Regex: equivalent (the empty words between spaces are filtered out)
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (!empty && line.length + 1 + word.length > columns) {
      lines.push(line)
      line = indent
      empty = true
    }
    line += (empty ? "" : " ") + word
    empty = false
  }
  lines.push(line)
  return lines
}

/** The help of the program (no command) or of one command. @internal */
export const help = (
  program: string,
  version: string,
  summary: string,
  commands: ReadonlyArray<Command>,
  command: Command | undefined,
  others: ReadonlyArray<{ readonly name: string; readonly summary: string }> = []
): string => {
  if (command === undefined) {
    const listed = [...commands, ...others]
    const column = Math.max(...listed.map((c) => c.name.length)) + 5
    return [
      `${program} ${version}: ${summary}`,
      "",
      `Usage: ${program} COMMAND [FLAGS]`,
      "",
      "Commands:",
      ...listed.flatMap((c) => wrap(c.summary, " ".repeat(column), `  ${c.name}`.padEnd(column))),
      "",
      ...wrap(`'${program} COMMAND --help' lists a command's flags; '${program} --version' prints the version.`, ""),
      ""
    ].join("\n")
  }
  return [
    `Usage: ${program} ${command.usage}`,
    "",
    ...command.description.flatMap((paragraph) => [...wrap(paragraph, ""), ""]),
    "Flags:",
    ...Object.values(command.flags).flatMap(flagHelp),
    "  --help",
    "      Print this help.",
    ...(command.sections ?? []).flatMap((section) => ["", `${section.title}:`, ...section.lines]),
    ""
  ].join("\n")
}

/** A flag's lines in `--help`: how it is written, then what it does, its default and variable. */
const flagHelp = (flag: Flag<unknown>): Array<string> => {
  const notes = [
    flag.description,
    flag.default === undefined ? "" : `Default: ${flag.default}.`,
    flag.variable === undefined ? "" : `Variable: ${flag.variable}.`,
    negatable(flag) ? `--no-${flag.name} turns it off, over ${flag.variable}.` : ""
    // Wrapped as words: the empty ones leave no trace.
  ].join(" ")
  const written = flag.placeholder !== undefined
    ? `--${flag.name} ${flag.placeholder}`
    : negatable(flag)
    ? `--${flag.name}, --no-${flag.name}`
    : `--${flag.name}`
  return [`  ${written}`, ...wrap(notes, "      ")]
}
