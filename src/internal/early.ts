/**
 * What the binary settles before any other module is evaluated (it is `main.ts`'s first import,
 * and modules are evaluated in import order, bundled too), since either could strike while the rest loads:
 * - SIGUSR1 would open Node's inspector to anyone who can reach 127.0.0.1:9229: a listener of its
 *   own keeps it closed, unless `--inspect-on-sigusr1` (or `ECHO_INSPECT_ON_SIGUSR1` true, 1, yes
 *   or on, without `--no-inspect-on-sigusr1`) asks for Node's behaviour.
 * - A closed stdout or stderr (`serve | head -1`) makes the next write fail with EPIPE, which
 *   Node throws as an unhandled 'error' event: ignored instead, so that a reader who left never
 *   stops the server. What cannot be written is dropped.
 *
 * @internal
 */
const inspector = process.argv.includes("--inspect-on-sigusr1") ||
  (/^(true|1|yes|on)$/i.test(process.env.ECHO_INSPECT_ON_SIGUSR1 ?? "") &&
    !process.argv.includes("--no-inspect-on-sigusr1"))
if (!inspector) process.on("SIGUSR1", () => {})
const dropWrite = () => {}
process.stdout.on("error", dropWrite)
process.stderr.on("error", dropWrite)
