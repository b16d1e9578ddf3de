/**
 * Recipes that cannot rot: every TypeScript block of README.md and docs/*.md is type-checked
 * (strict, as a user's project would be), and run, unless an HTML comment right above it says it
 * only shows a shape (`<!-- docs-test: shape -->`: a server that runs until stopped, say). A
 * block that defines tests (`it`, `describe`) has them run here, under the block's name; any
 * other block is imported, which runs it. A block imports the package as a user does
 * (`effect-tcp-echo`, `effect-tcp-echo/TestKit`): here, the sources.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

const root = path.resolve(import.meta.dirname, "..")
// Inside the repository, so that the blocks' own imports (effect, @effect/vitest) resolve.
const out = path.join(root, "test", ".docs")

interface Block {
  readonly doc: string
  readonly line: number
  readonly code: string
  readonly shape: boolean
  readonly file: string
}

const docs = [
  "README.md",
  ...fs.readdirSync(path.join(root, "docs")).filter((f) => f.endsWith(".md")).sort().map((
    f
  ) => `docs/${f}`)
]

/** The package's specifiers, as a user writes them, pointed at the sources. */
const localImports = (code: string, file: string) =>
  code.replace(/from "effect-tcp-echo(\/[A-Za-z]+)?"/g, (_, sub: string | undefined) => {
    const target = path.join(root, "src", sub === undefined ? "index.js" : `${sub.slice(1)}.js`)
    return `from "${path.relative(path.dirname(file), target).split(path.sep).join("/")}"`
  })

const extract = (doc: string): ReadonlyArray<Block> => {
  const lines = fs.readFileSync(path.join(root, doc), "utf8").split("\n")
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i]!)) continue
    const end = lines.indexOf("```", i + 1)
    if (end < 0) throw new Error(`${doc}:${i + 1}: a TypeScript block that never ends`)
    const shape = /^<!--\s*docs-test:\s*shape\s*-->$/.test(lines[i - 1]?.trim() ?? "")
    const file = path.join(out, `${doc.replace(/[/.]/g, "_")}_${i + 1}.ts`)
    blocks.push({ doc, line: i + 1, code: localImports(lines.slice(i + 1, end).join("\n"), file), shape, file })
    i = end
  }
  return blocks
}

fs.rmSync(out, { recursive: true, force: true })
fs.mkdirSync(out, { recursive: true })
const blocks = docs.flatMap(extract)
for (const block of blocks) fs.writeFileSync(block.file, `${block.code}\n`)
fs.writeFileSync(
  path.join(out, "tsconfig.json"),
  JSON.stringify({
    extends: "../../tsconfig.json",
    // A recipe shows what it needs; an import it shows for context is no error.
    compilerOptions: { noUnusedLocals: false, rootDir: "../.." },
    include: ["*.ts"]
  })
)

const definesTests = (code: string) => /^\s*(describe|it)(\.\w+)*\(/m.test(code)

describe("README.md", () => {
  it("stays a newcomer's read: at most 1,500 words (wc -w), the rest in docs/", () => {
    const words = fs.readFileSync(path.join(root, "README.md"), "utf8").split(/\s+/).filter((w) => w !== "")
    expect(words.length).toBeLessThanOrEqual(1500)
  })

  it("quotes its measured figures from docs/benchmarks.md, which a bench run regenerates", () => {
    const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")
    const measured = readme.slice(
      readme.indexOf("## Measured"),
      readme.indexOf("\n## ", readme.indexOf("## Measured") + 1)
    )
    const benchmarks = fs.readFileSync(path.join(root, "docs/benchmarks.md"), "utf8")
    // A ratio with its x, so that another figure's digits elsewhere in the page do not pass for it.
    const figures = measured.match(/\d+\.\d+x?/g) ?? []
    expect(figures.length).toBeGreaterThan(10)
    expect(figures.filter((figure) => !benchmarks.includes(figure))).toEqual([])
    expect(benchmarks).toContain(`on ${/\((\d{4}-\d\d-\d\d)\)/.exec(measured)?.[1]}`)
  })
})

describe("the TypeScript blocks of README.md and docs/", () => {
  it("there are blocks, and each runs or says it shows a shape only", () => {
    expect(blocks.length).toBeGreaterThan(5)
  })

  it("every block type-checks as a user's strict project would", () => {
    const tsc = spawnSync(
      process.execPath,
      [path.join(root, "node_modules/typescript/bin/tsc"), "-p", path.join(out, "tsconfig.json"), "--noEmit"],
      { cwd: root, encoding: "utf8", timeout: 120_000 }
    )
    // Point each error at its doc and line, not at the extracted file.
    const report = tsc.stdout.replace(
      /test\/\.docs\/(\S+?)_(md)_(\d+)\.ts\((\d+),(\d+)\)/g,
      (_, doc, md, at, line) => `${doc.replace(/_/g, "/")}.${md}:${Number(at) + Number(line)}`
    )
    expect(report).toBe("")
    expect(tsc.status).toBe(0)
  }, 120_000)
})

for (const block of blocks.filter((b) => !b.shape)) {
  const name = `${block.doc}:${block.line}`
  if (definesTests(block.code)) {
    // Its tests are collected here, under its name.
    describe(name, async () => {
      try {
        await import(pathToFileURL(block.file).href)
      } catch (error) {
        // A block that fails to load fails here, without hiding the others.
        it("loads", () => {
          throw error
        })
      }
    })
  } else {
    it(`${name} runs`, async () => {
      await import(pathToFileURL(block.file).href)
    }, 60_000)
  }
}
