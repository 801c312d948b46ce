// The reference PDS (@atproto/pds) on loopback, configured by PDS_* variables.
// Environment: ATDATA_SANDBOX_MODULES, PDS_*, ATDATA_SANDBOX_READY_FILE,
// ATDATA_SANDBOX_PARENT_PID (optional).
import { announce, importInstalled, listenOnLoopback, stopOn } from './_common.mjs'

const { PDS, envToCfg, envToSecrets, readEnv } = await importInstalled('@atproto/pds')
const env = readEnv()
const pds = await PDS.create(envToCfg(env), envToSecrets(env))
listenOnLoopback(pds.app)
const http = await pds.start()
const port = http.address().port
stopOn(['SIGTERM', 'SIGINT', 'SIGHUP'], () => pds.destroy())
console.log(`pds listening on http://localhost:${port}`)
announce(process.env.ATDATA_SANDBOX_READY_FILE, { service: 'pds', port, pid: process.pid })
