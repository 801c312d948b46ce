// Shared by plc.mjs and pds.mjs: loading the npm packages from the install
// folder, binding to loopback only, and stopping cleanly.
import { createRequire } from 'node:module'
import { writeFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

export const LOOPBACK = '127.0.0.1'

// The packages live in a cache folder keyed by the lock file, not beside
// these scripts, so resolve them from there explicitly.
export async function importInstalled(name) {
  const root = process.env.ATDATA_SANDBOX_MODULES
  if (!root) throw new Error('ATDATA_SANDBOX_MODULES is not set')
  const require = createRequire(join(root, 'package.json'))
  return import(pathToFileURL(require.resolve(name)).href)
}

// Express's app.listen(port) binds every interface; the sandbox must only be
// reachable from this machine.
export function listenOnLoopback(app) {
  const listen = app.listen.bind(app)
  app.listen = (port, ...rest) => listen(port, LOOPBACK, ...rest)
}

// The Python side waits for this file: it holds the port actually bound.
export function announce(readyFile, info) {
  if (!readyFile) return
  writeFileSync(readyFile + '.tmp', JSON.stringify(info))
  renameSync(readyFile + '.tmp', readyFile)
}

export function stopOn(signals, stop) {
  let stopping = false
  const handler = async (why) => {
    if (stopping) return
    stopping = true
    // Never hang on shutdown: a stuck keep-alive socket must not keep us up.
    setTimeout(() => process.exit(0), 5000).unref()
    try {
      await stop()
    } catch (err) {
      console.error(`error while stopping (${why}):`, err)
    }
    process.exit(0)
  }
  for (const sig of signals) process.on(sig, () => handler(sig))
  // A test run that dies without tearing down must not leave servers behind.
  const parent = Number(process.env.ATDATA_SANDBOX_PARENT_PID || 0)
  if (parent > 0) {
    setInterval(() => {
      try {
        process.kill(parent, 0)
      } catch {
        handler(`parent ${parent} exited`)
      }
    }, 1000).unref()
  }
}
