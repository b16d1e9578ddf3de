/**
 * The API reference, docs/api/ (`npm run docs`), as TypeDoc makes it from the sources' doc
 * comments (docs/typedoc.json): its entry points are the package's, every export of each is
 * documented (TypeDoc's validation, its warnings made errors) with `@since`, and the pages in the
 * repository are the ones the sources make now.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const api = path.join(root, "docs/api")
const config = JSON.parse(fs.readFileSync(path.join(root, "docs/typedoc.json"), "utf8")) as {
  readonly entryPoints: ReadonlyArray<string>
}
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
  readonly exports: Record<string, unknown>
}

interface Reflection {
  readonly name: string
  readonly kind: number
  readonly comment?: Comment
  readonly signatures?: ReadonlyArray<{ readonly comment?: Comment }>
  readonly children?: ReadonlyArray<Reflection>
}
interface Comment {
  readonly blockTags?: ReadonlyArray<{ readonly tag: string }>
}
// TypeDoc's ReflectionKind.Module and .Reference (a re-export, documented where it is declared).
const Module = 2
const Reference = 4194304

let out: string
let typedoc: { readonly status: number | null; readonly output: string }

beforeAll(() => {
  out = fs.mkdtempSync(path.join(os.tmpdir(), "echo-api-"))
  const result = spawnSync(
    process.execPath,
    [
      path.join(root, "node_modules/typedoc/bin/typedoc"),
      "--options",
      "docs/typedoc.json",
      "--out",
      path.join(out, "md"),
      "--json",
      path.join(out, "api.json")
    ],
    { cwd: root, encoding: "utf8", timeout: 240_000 }
  )
  typedoc = { status: result.status, output: `${result.stdout}${result.stderr}`.trim() }
}, 240_000)

afterAll(() => fs.rmSync(out, { recursive: true, force: true }))

/** Every file below `dir`, relative to it, with its text. */
const tree = (dir: string): Record<string, string> =>
  Object.fromEntries(
    (fs.readdirSync(dir, { recursive: true, withFileTypes: true }))
      .filter((entry) => entry.isFile())
      .map((entry) => {
        const file = path.join(entry.parentPath, entry.name)
        return [path.relative(dir, file), fs.readFileSync(file, "utf8")]
      })
  )

describe("the API reference", () => {
  it("documents the package's entry points, each subpath's module", () => {
    const modules = Object.keys(pkg.exports).filter((key) => key !== "." && key !== "./package.json").map((key) =>
      `../src/${key.slice(2)}.ts`
    )
    expect([...config.entryPoints].sort()).toEqual(modules.sort())
  })

  it("TypeDoc reports nothing: every export documented, every link resolved", () => {
    expect(typedoc.output).toBe("")
    expect(typedoc.status).toBe(0)
  })

  it("every export says since when it exists (@since)", () => {
    const project = JSON.parse(fs.readFileSync(path.join(out, "api.json"), "utf8")) as Reflection
    const modules = project.children ?? []
    expect(modules.map((m) => m.kind)).toEqual(modules.map(() => Module))
    const exports = modules.flatMap((m) => (m.children ?? []).map((d) => ({ module: m.name, declaration: d })))
    expect(exports.length).toBeGreaterThan(100)
    const without = exports
      .filter(({ declaration: d }) => d.kind !== Reference)
      .filter(({ declaration: d }) =>
        ![d.comment, ...(d.signatures ?? []).map((s) => s.comment)].some((c) =>
          c?.blockTags?.some((t) => t.tag === "@since")
        )
      )
      .map(({ declaration, module }) => `${module}.${declaration.name}`)
    expect(without).toEqual([])
  })

  it("docs/api holds the pages the sources make now (npm run docs writes them)", () => {
    const committed = tree(api)
    const made = tree(path.join(out, "md"))
    const stale = [...new Set([...Object.keys(committed), ...Object.keys(made)])].filter((file) =>
      committed[file] !== made[file]
    )
    expect(stale, "docs/api is out of date: run npm run docs").toEqual([])
  })
})
