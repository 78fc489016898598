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

// The Dataverse peer (/api/data/v9.2/, srv/dataverse-service.cds) takes what Dataverse takes: an
// access token of the identity peer (keys in IB_PEER_DATAVERSE_JWKS) issued for this very origin.
// A valid token gets in as the CAP user "dataverse-app"; everything else is answered 401.
const DATAVERSE_USER = 'dataverse-app'
const dataverseKeys = new Map(
  JSON.parse(process.env.IB_PEER_DATAVERSE_JWKS || '{"keys": []}').keys.map((jwk) => [
    jwk.kid,
    crypto.createPublicKey({ key: jwk, format: 'jwk' }),
  ]),
)

function bearerClaims(req) {
  const match = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(req.headers.authorization || '')
  if (!match) return null
  try {
    const header = JSON.parse(Buffer.from(match[1], 'base64url').toString())
    const claims = JSON.parse(Buffer.from(match[2], 'base64url').toString())
    const key = dataverseKeys.get(header.kid)
    const signed = Buffer.from(`${match[1]}.${match[2]}`)
    if (!key || header.alg !== 'RS256' || !crypto.verify('sha256', signed, key, Buffer.from(match[3], 'base64url'))) return null
    if (claims.exp < Date.now() / 1000 || claims.aud !== `${req.protocol}://${req.headers.host}`) return null
    return claims
  } catch {
    return null
  }
}

// Service protection limits: /test/dataverse/throttle makes the next requests answer what Dataverse
// answers when a user sends too many, each with the Retry-After seconds given.
let dataverseThrottle = [] // [{ status, retryAfter }] of the next answers

function dataverseGateway(req, res, next) {
  const claims = bearerClaims(req)
  record(req, claims ? DATAVERSE_USER : null)
  if (!claims) {
    res.status(401).set('WWW-Authenticate', 'Bearer').json({
      error: { code: '0x80072560', message: 'The user is not a member of the organization.' },
    })
    return
  }
  const throttled = dataverseThrottle.shift()
  if (throttled) {
    res.status(throttled.status).set('Retry-After', String(throttled.retryAfter)).json({
      error: {
        code: '0x80072322',
        message: 'Number of requests exceeded the limit of 6000 over time window of 300 seconds.',
      },
    })
    return
  }
  const password = configuredUsers[DATAVERSE_USER].password
  req.headers.authorization = `Basic ${Buffer.from(`${DATAVERSE_USER}:${password}`).toString('base64')}`
  req.headers['x-ib-object-id'] = claims.oid
  // srv/dataverse-service.js answers an app as its Application User
  if (claims.idtyp === 'app') req.headers['x-ib-application-id'] = claims.appid
  else delete req.headers['x-ib-application-id']
  req.ibClaims = claims
  if (dataversePaging(req, res)) next()
}

// Dataverse pages only by @odata.nextLink: the client asks for a page size with
// Prefer: odata.maxpagesize, $top ends paging, and $skip is refused. CAP does none of this, so the
// gateway does it on top of CAP's $top/$skip. Answers the request itself and returns false for $skip.
const PAGE_SIZE = /odata\.maxpagesize=(\d+)/

function dataversePaging(req, res) {
  const [path, rawQuery = ''] = req.url.split('?')
  const params = rawQuery.split('&').filter(Boolean)
  const named = (name) => params.find((p) => p.startsWith(`${name}=`))
  if (named('$skip') || named('%24skip')) {
    res.status(400).json({ error: { code: '0x80060888', message: 'The query parameter $skip is not supported' } })
    return false
  }
  const preference = PAGE_SIZE.exec(req.headers.prefer || '')
  if (req.method !== 'GET' || !preference || named('$top')) return true
  const size = Number(preference[1])
  const token = named('$skiptoken')
  const offset = token ? Number(token.split('=')[1]) : 0
  const kept = params.filter((p) => !p.startsWith('$skiptoken='))
  // one row more than the page tells whether there is a next page
  const query = [...kept, `$top=${size + 1}`, `$skip=${offset}`].join('&')
  req.url = `${path}?${query}`
  req.query = Object.fromEntries([...kept, `$top=${size + 1}`, `$skip=${offset}`].map((p) => {
    const [name, value = ''] = p.split('=')
    return [decodeURIComponent(name), decodeURIComponent(value)]
  }))
  res.set('Preference-Applied', `odata.maxpagesize=${size}`)
  const base = `${req.protocol}://${req.headers.host}${req.baseUrl}${path}` // CAP's routers change baseUrl
  const send = res.send.bind(res)
  res.send = (body) => {
    let payload = null
    try {
      payload = JSON.parse(Buffer.isBuffer(body) ? body.toString() : body)
    } catch {
      return send(body)
    }
    if (Array.isArray(payload?.value) && payload.value.length > size) {
      payload.value = payload.value.slice(0, size)
      payload['@odata.nextLink'] = `${base}?${[...kept, `$skiptoken=${offset + size}`].join('&')}`
    }
    return send(JSON.stringify(payload))
  }
  return true
}

// The Global Discovery Service of a tenant with one environment: this server.
function discoveryInstances(req, res) {
  const origin = `${req.protocol}://${req.headers.host}`
  res.json({
    value: [
      {
        Id: 'd1a2b3c4-e5f6-4a7b-8c9d-0e1f2a3b4c5d',
        UniqueName: 'unq5f8c2a',
        UrlName: 'ibtest',
        FriendlyName: 'IB Test',
        State: 0,
        Version: '9.2.24111.00190',
        Url: origin,
        ApiUrl: origin,
        LastUpdated: '2024-11-20T10:00:00Z',
        EnvironmentId: 'a9b8c7d6-e5f4-4a3b-2c1d-0e9f8a7b6c5d',
        Region: 'EUR',
        TenantId: req.ibClaims.tid,
      },
    ],
  })
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
  // {"times", "retry_after", "status" (429 unless given)}
  router.post('/dataverse/throttle', express.json(), (req, res) => {
    const { times = 1, retry_after: retryAfter = 1, status = 429 } = req.body || {}
    dataverseThrottle = Array.from({ length: times }, () => ({ status, retryAfter }))
    res.sendStatus(204)
  })
  // An Application User as an administrator adds it: {"applicationid", "fullname", "roles": [names]}
  router.post('/dataverse/application-users', express.json(), async (req, res) => {
    const { applicationid, fullname, roles = [] } = req.body || {}
    const users = 'ib.dataverse.systemusers'
    await DELETE.from(users).where({ applicationid })
    const systemuserid = cds.utils.uuid()
    await INSERT.into(users).entries({ systemuserid, applicationid, fullname, accessmode: 4 })
    for (const name of roles) {
      const role = await SELECT.one.from('ib.dataverse.roles').where({ name })
      if (!role) return res.status(400).json({ error: `no role ${name}` })
      await INSERT.into('ib.dataverse.systemuserroles').entries({
        systemuserroleid: cds.utils.uuid(), systemuserid, roleid: role.roleid,
      })
    }
    res.status(201).json({ systemuserid })
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
  app.use('/api/data', dataverseGateway)
  app.get('/api/discovery/v2.0/Instances', dataverseGateway, discoveryInstances)
})

module.exports = cds.server
