'use strict'
// Bootstrap of the SAP OData test peer (CAP). CAP alone is laxer than an SAP Gateway in ways our
// clients must cope with, so this adds what a real Gateway does: CSRF tokens per user, writes refused
// without one, updates answered 204. It also keeps the server on loopback and adds /test/ hooks.
const crypto = require('node:crypto')
const dns = require('node:dns')
const express = require('express')
const cds = require('@sap/cds')

const HOST = '127.0.0.1'
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'MERGE', 'DELETE'])
const UPDATE_METHODS = new Set(['PUT', 'PATCH', 'MERGE'])
const REQUEST_LOG_SIZE = 200
// Headers never kept in the request log: they carry passwords or sessions.
const SECRET_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization'])

// The V2 adapter forwards every V2 request to the V4 service over HTTP. The V2 guard marks them with
// a secret only this process knows, so the V4 guard lets them through (they were checked already)
// and the log shows each client request once, under the URL the client used.
const PROXY_MARK = 'x-ib-peer-proxied'
const proxySecret = crypto.randomBytes(16).toString('hex')

// The adapter targets http://localhost:PORT; the server listens on 127.0.0.1 only.
dns.setDefaultResultOrder('ipv4first')

// Read once, before CAP's mocked auth turns the entries into User objects.
const configuredUsers = JSON.parse(JSON.stringify(cds.env.requires.auth.users))

const csrfTokens = new Map() // user id -> token
let requestLog = []

function authenticatedUser(req) {
  const header = req.headers.authorization
  if (!header || !/^basic /i.test(header)) return null
  const credentials = Buffer.from(header.slice(6), 'base64').toString()
  const colon = credentials.indexOf(':')
  if (colon < 0) return null
  const id = credentials.slice(0, colon)
  const user = configuredUsers[id]
  return user && typeof user === 'object' && user.password === credentials.slice(colon + 1) ? id : null
}

function record(req, user) {
  const url = new URL(req.originalUrl, 'http://peer')
  const headers = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (!SECRET_HEADERS.has(name) && name !== PROXY_MARK) headers[name] = value
  }
  const entry = {
    method: req.method,
    url: req.originalUrl,
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    user,
    headers,
    status: null,
  }
  req.res.on('finish', () => { entry.status = req.res.statusCode })
  requestLog.push(entry)
  if (requestLog.length > REQUEST_LOG_SIZE) requestLog = requestLog.slice(-REQUEST_LOG_SIZE)
}

// What SAP Gateway does: authentication first (CAP answers 401 further on), then the CSRF check.
// Answers the request itself and returns false when a write comes without the user's token.
function passesGateway(req, res) {
  const user = authenticatedUser(req)
  record(req, user)
  if (!user) return true
  const sent = req.headers['x-csrf-token']
  if (sent && sent.toLowerCase() === 'fetch') {
    if (!csrfTokens.has(user)) csrfTokens.set(user, crypto.randomBytes(24).toString('base64url'))
    res.set('x-csrf-token', csrfTokens.get(user))
  }
  const token = csrfTokens.get(user)
  if (WRITE_METHODS.has(req.method) && (!token || sent !== token)) {
    res.status(403).set('x-csrf-token', 'Required').type('text/plain').send('CSRF token validation failed')
    return false
  }
  // A Gateway answers updates with 204 and no body; CAP does so only when asked to.
  const method = (req.method === 'POST' && req.headers['x-http-method']?.toUpperCase()) || req.method
  if (UPDATE_METHODS.has(method) && !req.headers.prefer) req.headers.prefer = 'return=minimal'
  return true
}

function v2Gateway(req, res, next) {
  if (!passesGateway(req, res)) return
  req.headers[PROXY_MARK] = proxySecret
  next()
}

function v4Gateway(req, res, next) {
  if (req.headers[PROXY_MARK] === proxySecret) {
    delete req.headers[PROXY_MARK]
    return next()
  }
  if (passesGateway(req, res)) next()
}

function testHooks() {
  const router = express.Router()
  router.post('/expire-csrf', (_req, res) => {
    csrfTokens.clear()
    res.sendStatus(204)
  })
  router.get('/requests', (_req, res) => res.json(requestLog))
  router.post('/requests/clear', (_req, res) => {
    requestLog = []
    res.sendStatus(204)
  })
  return router
}

// Runs after the V2 adapter's own bootstrap handler, which mounts the adapter ahead of these.
cds.on('bootstrap', (app) => {
  cds.cov2ap.before = [v2Gateway]
  const listen = app.listen.bind(app)
  app.listen = (port, ...rest) => listen(port, HOST, ...rest)
  app.use('/test', testHooks())
  app.use('/odata/v4', v4Gateway)
})

module.exports = cds.server
