// The Microsoft identity test peer: oauth2-mock-server behind Microsoft Entra ID's tenant paths, over
// HTTPS, on 127.0.0.1 only. MSAL accepts only https authorities with a tenant segment, and the stock
// mock hands a token to anyone: this adds what Entra checks (known tenants, registered apps and
// redirect URIs, client secrets, client assertions signed by a registered certificate, refresh tokens
// that can be revoked) and answers refusals the way Entra does (error, AADSTS text, error_codes).
//
// Environment: IB_IDENTITY_TLS_KEY / IB_IDENTITY_TLS_CERT (PEM files), IB_IDENTITY_TENANTS (comma
// separated tenant ids; "organizations" and "common" sign users in to the first). Prints
// "identity peer listening on https://127.0.0.1:PORT" when ready. Test hooks under /test/.
import crypto from 'node:crypto'
import fs from 'node:fs'
import https from 'node:https'
import express from 'express'
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server'

const HOST = '127.0.0.1'
const OIDC_SCOPES = new Set(['openid', 'profile', 'offline_access', 'email'])
const MULTI_TENANT = new Set(['organizations', 'common'])
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const USER = { oid: crypto.randomUUID(), name: 'Dana Developer', username: 'dana@contoso.example' }

const tenants = (process.env.IB_IDENTITY_TENANTS || '').split(',').filter(Boolean)
const apps = new Map() // client id -> { tenant, secret, certificates: [KeyObject], redirectUris: [] }
const refreshTokens = new Map() // token -> { clientId, tenant }
let tokenLog = []
let denyNextConsent = false
let userTokenLifetime = null // seconds of a signed-in user's access token; null: the stock hour
let discoveryDelayMs = 0 // a slow identity host: the OpenID configuration answers this late

const issuer = new OAuth2Issuer()
const service = new OAuth2Service(issuer)
await issuer.keys.generate('RS256')

function base(req) {
  return `https://${req.headers.host}`
}

function tenantId(tenant) {
  return MULTI_TENANT.has(tenant) ? tenants[0] : tenant
}

function entraError(status, error, code, description) {
  return {
    statusCode: status,
    body: {
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${crypto.randomUUID()} Correlation ID: ${crypto.randomUUID()} Timestamp: ${new Date().toISOString()}`,
      error_codes: [code],
      timestamp: new Date().toISOString(),
    },
  }
}

function knownTenant(req, res, next) {
  const tenant = req.params.tenant
  if (MULTI_TENANT.has(tenant) || tenants.includes(tenant)) {
    req.ibTenant = tenantId(tenant)
    req.ibTenantSegment = tenant // the stock handler's router replaces req.params
    return next()
  }
  const refusal = entraError(400, 'invalid_tenant', 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`)
  res.status(refusal.statusCode).json(refusal.body)
}

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString())
}

// Entra checks a client assertion against the certificates uploaded to the app registration only:
// an x5c header the client sends along proves nothing.
function assertionProblem(assertion, app, clientId, tokenEndpoint) {
  const parts = String(assertion).split('.')
  if (parts.length !== 3) return entraError(401, 'invalid_client', 50027, 'JWT token is invalid or malformed.')
  let header, claims
  try {
    header = b64urlJson(parts[0])
    claims = b64urlJson(parts[1])
  } catch {
    return entraError(401, 'invalid_client', 50027, 'JWT token is invalid or malformed.')
  }
  const options = {
    RS256: { padding: crypto.constants.RSA_PKCS1_PADDING },
    PS256: { padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
  }[header.alg]
  if (!options) return entraError(401, 'invalid_client', 5002738, `Invalid JWT token. '${header.alg}' is not a supported signature algorithm.`)
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`)
  const signature = Buffer.from(parts[2], 'base64url')
  const valid = app.certificates.some((key) => crypto.verify('sha256', signed, { key, ...options }, signature))
  if (!valid) {
    return entraError(401, 'invalid_client', 700027, 'Client assertion failed signature validation.')
  }
  const now = Math.floor(Date.now() / 1000)
  if (claims.iss !== clientId || claims.sub !== clientId) {
    return entraError(401, 'invalid_client', 700023, 'Client assertion audience claim does not match Realm issuer.')
  }
  if (claims.aud !== tokenEndpoint) {
    return entraError(401, 'invalid_client', 50027, `Invalid JWT token: the audience '${claims.aud}' is not the token endpoint.`)
  }
  if (typeof claims.exp !== 'number' || claims.exp < now) {
    return entraError(401, 'invalid_client', 700024, 'Client assertion is not within its valid time range.')
  }
  return null
}

function clientProblem(req, body) {
  const clientId = body.client_id
  const app = apps.get(clientId)
  if (!app || (app.tenant !== req.ibTenant && !app.multiTenant)) {
    return entraError(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${req.ibTenant}'.`)
  }
  const confidential = Boolean(app.secret) || app.certificates.length > 0
  if (body.client_assertion) {
    if (body.client_assertion_type !== ASSERTION_TYPE) {
      return entraError(400, 'invalid_request', 50027, 'Invalid client_assertion_type.')
    }
    const endpoint = `${base(req)}/${req.ibTenantSegment}/oauth2/v2.0/token`
    return assertionProblem(body.client_assertion, app, clientId, endpoint)
  }
  if (body.client_secret !== undefined) {
    const sent = Buffer.from(String(body.client_secret))
    const expected = Buffer.from(app.secret || '')
    if (!app.secret || sent.length !== expected.length || !crypto.timingSafeEqual(sent, expected)) {
      return entraError(401, 'invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.')
    }
    return null
  }
  if (confidential) {
    return entraError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
  }
  return null
}

// The service principal's object id: a stable GUID per client id.
function applicationObjectId(clientId) {
  const h = crypto.createHash('sha256').update(clientId).digest('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`
}

function resourceOf(scope) {
  const resourceScopes = String(scope || '').split(' ').filter((s) => s && !OIDC_SCOPES.has(s))
  if (resourceScopes.length === 0) return { aud: '00000003-0000-0000-c000-000000000000', names: [] }
  const first = resourceScopes[0]
  const cut = first.lastIndexOf('/')
  return { aud: first.slice(0, cut), names: resourceScopes.map((s) => s.slice(s.lastIndexOf('/') + 1)) }
}

// Runs before the stock handler answers: refusals replace its answer.
service.on('beforeResponse', (response, req) => {
  const body = req.body || {}
  const entry = { tenant: req.ibTenant, grant_type: body.grant_type, client_id: body.client_id, scope: body.scope }
  let refusal = clientProblem(req, body)
  if (!refusal && body.grant_type === 'client_credentials' && !String(body.scope || '').endsWith('/.default')) {
    refusal = entraError(400, 'invalid_scope', 1002012, `The provided value for scope ${body.scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`)
  }
  if (!refusal && body.grant_type === 'refresh_token') {
    const known = refreshTokens.get(body.refresh_token)
    if (!known || known.clientId !== body.client_id) {
      refusal = entraError(400, 'invalid_grant', 70008, 'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.')
    }
  }
  if (refusal) {
    response.statusCode = refusal.statusCode
    response.body = refusal.body
  } else {
    delete response.body.scope
    response.body.ext_expires_in = response.body.expires_in
    if (body.grant_type !== 'client_credentials') {
      if (userTokenLifetime !== null) {
        response.body.expires_in = userTokenLifetime
        response.body.ext_expires_in = userTokenLifetime
      }
      response.body.scope = [...String(body.scope || '').split(' ').filter((s) => s && !OIDC_SCOPES.has(s)), 'openid', 'profile', 'offline_access'].join(' ')
      response.body.client_info = Buffer.from(JSON.stringify({ uid: USER.oid, utid: req.ibTenant })).toString('base64url')
      refreshTokens.set(response.body.refresh_token, { clientId: body.client_id, tenant: req.ibTenant })
    }
  }
  entry.status = response.statusCode
  tokenLog.push(entry)
})

service.on('beforeTokenSigning', (token, req) => {
  const body = req.body || {}
  const tenant = req.ibTenant
  const payload = token.payload
  payload.iss = `${base(req)}/${tenant}/v2.0`
  payload.tid = tenant
  payload.ver = '2.0'
  if (payload.nonce !== undefined || payload.aud === body.client_id) {
    // the ID token of a signed-in user
    Object.assign(payload, { oid: USER.oid, sub: USER.oid, name: USER.name, preferred_username: USER.username })
    return
  }
  const { aud, names } = resourceOf(body.scope)
  Object.assign(payload, { aud, azp: body.client_id, appid: body.client_id })
  delete payload.scope
  if (body.grant_type === 'client_credentials') {
    Object.assign(payload, { oid: applicationObjectId(body.client_id), roles: [], idtyp: 'app' })
  } else {
    Object.assign(payload, { oid: USER.oid, sub: USER.oid, scp: names.join(' '), upn: USER.username })
    if (userTokenLifetime !== null) payload.exp = payload.iat + userTokenLifetime
  }
})

// --- routes ------------------------------------------------------------------------------------

const app = express()
app.disable('x-powered-by')
const delegate = (path) => (req, res, next) => {
  const query = req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?')) : ''
  req.url = path + query
  service.requestHandler(req, res, next)
}

app.get('/:tenant/v2.0/.well-known/openid-configuration', knownTenant, async (req, res) => {
  if (discoveryDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, discoveryDelayMs))
  const root = `${base(req)}/${req.params.tenant}`
  res.json({
    token_endpoint: `${root}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${root}/discovery/v2.0/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer: `${base(req)}/${MULTI_TENANT.has(req.params.tenant) ? '{tenantid}' : req.ibTenant}/v2.0`,
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${base(req)}/oidc/userinfo`,
    authorization_endpoint: `${root}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${root}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${root}/oauth2/v2.0/logout`,
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nonce', 'name', 'preferred_username', 'oid', 'tid', 'ver'],
    tenant_region_scope: 'EU',
    cloud_instance_name: 'microsoftonline.com',
  })
})

app.get('/:tenant/discovery/v2.0/keys', knownTenant, (_req, res) => {
  res.json({ keys: issuer.keys.toJSON() })
})

app.get('/:tenant/oauth2/v2.0/authorize', knownTenant, (req, res, next) => {
  const registered = apps.get(req.query.client_id)
  if (!registered) {
    const refusal = entraError(400, 'unauthorized_client', 700016, `Application with identifier '${req.query.client_id}' was not found in the directory.`)
    return res.status(400).json(refusal.body)
  }
  if (!registered.redirectUris.includes(req.query.redirect_uri)) {
    const refusal = entraError(400, 'invalid_request', 50011, `The redirect URI '${req.query.redirect_uri}' specified in the request does not match the redirect URIs configured for the application '${req.query.client_id}'.`)
    return res.status(400).json(refusal.body)
  }
  if (denyNextConsent) {
    denyNextConsent = false
    const url = new URL(String(req.query.redirect_uri))
    url.searchParams.set('error', 'access_denied')
    url.searchParams.set('error_description', 'AADSTS65004: User declined to consent to access the app.')
    if (req.query.state) url.searchParams.set('state', String(req.query.state))
    return res.redirect(url.href)
  }
  delegate('/authorize')(req, res, next)
})

app.post('/:tenant/oauth2/v2.0/token', knownTenant, delegate('/token'))

const hooks = express.Router()
hooks.use(express.json())
hooks.post('/apps', (req, res) => {
  const { client_id: clientId, tenant, secret, certificates = [], redirect_uris: redirectUris = [], multi_tenant: multiTenant = false } = req.body
  apps.set(clientId, {
    tenant,
    secret: secret || null,
    certificates: certificates.map((pem) => new crypto.X509Certificate(pem).publicKey),
    redirectUris,
    multiTenant,
  })
  res.sendStatus(204)
})
// What an administrator does in the app registration: Certificates & secrets > Upload certificate.
hooks.post('/apps/:clientId/certificates', (req, res) => {
  const registered = apps.get(req.params.clientId)
  if (!registered) return res.status(404).json({ error: 'no such app' })
  registered.certificates.push(new crypto.X509Certificate(req.body.certificate).publicKey)
  res.sendStatus(204)
})
hooks.post('/user-token-lifetime', (req, res) => {
  userTokenLifetime = req.body.seconds ?? null
  res.sendStatus(204)
})
hooks.post('/discovery-delay', (req, res) => {
  discoveryDelayMs = Math.round(1000 * (req.body.seconds || 0))
  res.sendStatus(204)
})
hooks.post('/deny-next-consent', (_req, res) => {
  denyNextConsent = true
  res.sendStatus(204)
})
hooks.post('/revoke-refresh-tokens', (_req, res) => {
  refreshTokens.clear()
  res.sendStatus(204)
})
hooks.get('/token-requests', (_req, res) => res.json(tokenLog))
hooks.post('/token-requests/clear', (_req, res) => {
  tokenLog = []
  res.sendStatus(204)
})
app.use('/test', hooks)
app.use((_req, res) => res.status(404).json({ error: 'not_found' }))

const server = https.createServer(
  { key: fs.readFileSync(process.env.IB_IDENTITY_TLS_KEY), cert: fs.readFileSync(process.env.IB_IDENTITY_TLS_CERT) },
  app,
)
server.listen(0, HOST, () => {
  const { port } = server.address()
  issuer.url = `https://${HOST}:${port}`
  console.log(`identity peer listening on https://${HOST}:${port}`)
})
