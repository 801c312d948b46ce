// An in-memory PLC directory (did:plc registry) on loopback.
// Environment: ATDATA_SANDBOX_MODULES, PLC_PORT (0 picks a free port),
// ATDATA_SANDBOX_READY_FILE, ATDATA_SANDBOX_PARENT_PID (optional).
import { announce, importInstalled, listenOnLoopback, stopOn } from './_common.mjs'

const plcPkg = await importInstalled('@did-plc/server')
const { Database, PlcServer } = plcPkg.default ?? plcPkg
const server = PlcServer.create({ db: Database.mock(), port: Number(process.env.PLC_PORT || 0) })
listenOnLoopback(server.app)
const http = await server.start()
const port = http.address().port
stopOn(['SIGTERM', 'SIGINT', 'SIGHUP'], () => server.destroy())
console.log(`plc listening on http://localhost:${port}`)
announce(process.env.ATDATA_SANDBOX_READY_FILE, { service: 'plc', port, pid: process.pid })
