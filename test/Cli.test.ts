import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as net from "node:net"
import { Client } from "../src/index.js"
import { run, type Running, serve } from "./utils/cli.js"

const started: Array<Running> = []
const start = async (args: ReadonlyArray<string> = [], env: Record<string, string> = {}) => {
  const running = await serve(args, env)
  started.push(running)
  return running
}
afterEach(() => {
  for (const running of started.splice(0)) running.child.kill("SIGKILL")
})

const roundTrip = (port: number, payload: Buffer) =>
  Effect.runPromise(Client.roundTrip({ port }, [payload]))

describe("serve", () => {
  it("prints HOST:PORT first, then the requested and effective backlog, and echoes", async () => {
    const server = await start(["--backlog", "100000"])
    expect(server.address.host).toBe("127.0.0.1")
    expect(server.lines[0]).toContain(`127.0.0.1:${server.address.port}`)
    const backlog = await server.waitFor(/backlog requested 100000, effective \d+/)
    expect(backlog).toMatch(/effective \d+/)
    const echoed = await roundTrip(server.address.port, Buffer.from("hello"))
    expect(Buffer.from(echoed).toString()).toBe("hello")
  })

  it("SIGINT shuts down gracefully with exit code 0", async () => {
    const server = await start()
    server.child.kill("SIGINT")
    expect(await server.exited).toBe(0)
  })

  it("a port in use exits non-zero naming the address and the flag", async () => {
    const taken = net.createServer()
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r))
    const port = (taken.address() as net.AddressInfo).port
    const result = run(["serve", "--port", String(port)])
    taken.close()
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain(`127.0.0.1:${port} is already in use`)
    expect(result.stderr).toContain("--port")
    expect(result.stderr).not.toContain("    at ")
  })

  it("an out-of-range port exits non-zero naming the option", () => {
    const result = run(["serve", "--port", "70000"])
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain("invalid port: 70000")
  })

  it("a host that is not IPv4 exits non-zero naming the option", () => {
    const result = run(["serve", "--host", "::1"])
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain("invalid host")
  })

  it("an unknown flag is a usage error", () => {
    const result = run(["serve", "--bogus"])
    expect(result.status).not.toBe(0)
    expect(result.stdout + result.stderr).toContain("--bogus")
  })
})

describe("probe", () => {
  it("--json prints one object keyed by limit", () => {
    const result = run(["probe", "--json", "--backlog", "100000"])
    expect(result.status).toBe(0)
    const limits = JSON.parse(result.stdout)
    expect(typeof limits.somaxconn).toBe("number")
    expect(limits.backlog.requested).toBe(100000)
    expect(limits.backlog.effective).toBe(Math.min(100000, limits.somaxconn))
  })

  it("prints a table naming each limit and how to set it", () => {
    const result = run(["probe"])
    expect(result.status).toBe(0)
    expect(result.stdout).toMatch(/somaxconn\s+\d+\s+sysctl net\.core\.somaxconn/)
  })
})
