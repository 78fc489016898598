'use strict'
// What the Dataverse Web API does on top of plain OData that the CAP service alone does not:
// - WhoAmI as Dataverse answers it: the caller's systemuserid. An app (server.js passes an app-only
//   token's client id on as x-ib-application-id) is answered as its Application User: the one
//   /test/dataverse/application-users made for its client id, or else one made on first use, named
//   after the client id and holding the System Administrator role (the Power Platform admin center
//   step the tests skip). A signed-in user's id is the token's object id;
// - security roles: an Application User without any (systemuserroles) may not read or write a table:
//   403, 0x80040220 "Principal user (Id=..., type=8, roleCount=0, ...) is missing prvReadAccount
//   privilege ...", as Dataverse answers; WhoAmI needs no privilege;
// - formatted values: with Prefer: odata.include-annotations="OData.Community.Display.V1.FormattedValue"
//   (or "*"), every choice, number, money, date and lookup column comes with a display string next to
//   it ("<column>@OData.Community.Display.V1.FormattedValue"), and lookups with the logical name of
//   the table they point at when Microsoft.Dynamics.CRM annotations are asked for;
// - lookups written with "<navigation>@odata.bind": CAP stores the id as given, Dataverse refuses an id
//   no record has (404, 0x80040217 "account With Id = ... Does Not Exist").
const cds = require('@sap/cds')

const ORGANIZATION_ID = '6f0c7a54-3d1e-4b2a-9c8f-1e2d3c4b5a69'
const BUSINESS_UNIT_ID = '2b9d4e61-7a3c-4f5e-8d1b-0c9a8b7e6f54'

const SYSTEM_ADMINISTRATOR = 'f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a51'
// Dataverse's privilege names and object type codes of the served tables.
const TABLES = {
  accounts: { privilege: 'Account', otc: 1, logical: 'account' },
  contacts: { privilege: 'Contact', otc: 2, logical: 'contact' },
  systemusers: { privilege: 'SystemUser', otc: 8, logical: 'systemuser' },
}
const ACCESS = { READ: 'Read', CREATE: 'Create', UPDATE: 'Write', DELETE: 'Delete' }

const FORMATTED = 'OData.Community.Display.V1.FormattedValue'
const LOOKUP_NAME = 'Microsoft.Dynamics.CRM.lookuplogicalname'
const ASSOCIATED_NAVIGATION = 'Microsoft.Dynamics.CRM.associatednavigationproperty'
// The labels of the account table's Industry choice (industrycode) in a new environment.
const INDUSTRIES = {
  1: 'Accounting',
  2: 'Agriculture and Non-petrol Natural Resource Extraction',
  3: 'Broadcasting Printing and Publishing',
  4: 'Brokers',
  5: 'Building Supply Retail',
  6: 'Business Services',
  7: 'Consulting',
  8: 'Consumer Services',
  9: 'Design, Direction and Creative Management',
  10: 'Distributors, Dispatchers and Processors',
}
const ACCOUNT_STATES = { 0: 'Active', 1: 'Inactive' }
// How an environment with the default (English, United States) user settings and US dollar shows them.
const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' })
const whole = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })
const moment = new Intl.DateTimeFormat('en-US', {
  year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZone: 'UTC',
})

function requestedAnnotations(req) {
  const match = /odata\.include-annotations="?([^",;]*)"?/.exec(req.headers?.prefer || '')
  const wanted = match ? match[1].split(/\s+/).filter(Boolean) : []
  const includes = (term) =>
    wanted.some((w) => w === '*' || w === term || (w.endsWith('.*') && term.startsWith(w.slice(0, -1))))
  return { formatted: includes(FORMATTED), lookups: includes(LOOKUP_NAME) }
}

function annotate(row, column, text) {
  if (row[column] !== null && row[column] !== undefined) row[`${column}@${FORMATTED}`] = text
}

function formatDates(row) {
  for (const column of ['createdon', 'modifiedon']) {
    if (row[column]) annotate(row, column, moment.format(new Date(row[column])).replace(',', ''))
  }
}

function formatAccount(row) {
  if (row.industrycode in INDUSTRIES) annotate(row, 'industrycode', INDUSTRIES[row.industrycode])
  if (row.statecode in ACCOUNT_STATES) annotate(row, 'statecode', ACCOUNT_STATES[row.statecode])
  if (row.revenue !== null && row.revenue !== undefined) annotate(row, 'revenue', money.format(Number(row.revenue)))
  if (row.numberofemployees !== null && row.numberofemployees !== undefined) {
    annotate(row, 'numberofemployees', whole.format(row.numberofemployees))
  }
  formatDates(row)
}

// The Application User of the calling app (null for a signed-in user), made on its first call.
async function applicationUser(req) {
  const applicationid = req.headers['x-ib-application-id']
  if (!applicationid) return null
  const found = await SELECT.one.from('ib.dataverse.systemusers').where({ applicationid })
  if (found) return found
  const user = {
    systemuserid: cds.utils.uuid(),
    fullname: `# ${applicationid}`,
    applicationid,
    azureactivedirectoryobjectid: req.headers['x-ib-object-id'],
    accessmode: 4,
  }
  await INSERT.into('ib.dataverse.systemusers').entries(user)
  await INSERT.into('ib.dataverse.systemuserroles').entries({
    systemuserroleid: cds.utils.uuid(),
    systemuserid: user.systemuserid,
    roleid: SYSTEM_ADMINISTRATOR,
  })
  return user
}

module.exports = cds.service.impl(function () {
  const { accounts } = this.entities

  this.on('WhoAmI', async (req) => ({
    BusinessUnitId: BUSINESS_UNIT_ID,
    UserId: (await applicationUser(req))?.systemuserid ?? req.headers['x-ib-object-id'],
    OrganizationId: ORGANIZATION_ID,
  }))

  this.before(Object.keys(ACCESS), Object.keys(TABLES), async (req) => {
    const user = await applicationUser(req)
    if (!user) return
    const roles = await SELECT.from('ib.dataverse.systemuserroles').where({ systemuserid: user.systemuserid })
    if (roles.length) return
    const table = TABLES[req.target.name.split('.').pop()]
    req.reject({
      status: 403,
      code: '0x80040220',
      message:
        `Principal user (Id=${user.systemuserid}, type=8, roleCount=0, privilegeCount=0, accessMode=4, ` +
        `businessUnitId=${BUSINESS_UNIT_ID}), is missing prv${ACCESS[req.event]}${table.privilege} privilege ` +
        `on OTC=${table.otc} for entity '${table.logical}'. context.Caller=${user.systemuserid}`,
    })
  })

  this.after('READ', 'accounts', (result, req) => {
    if (!requestedAnnotations(req).formatted) return
    for (const row of [result].flat()) if (row) formatAccount(row)
  })

  this.after('READ', 'contacts', async (result, req) => {
    const wanted = requestedAnnotations(req)
    if (!wanted.formatted && !wanted.lookups) return
    const rows = [result].flat().filter(Boolean)
    const ids = [...new Set(rows.map((row) => row._parentcustomerid_value).filter(Boolean))]
    const names = new Map()
    if (wanted.formatted && ids.length) {
      const found = await SELECT.from(accounts).columns('accountid', 'name').where({ accountid: { in: ids } })
      for (const account of found) names.set(account.accountid, account.name)
    }
    for (const row of rows) {
      if (row._parentcustomerid_value && wanted.lookups) {
        row[`_parentcustomerid_value@${ASSOCIATED_NAVIGATION}`] = 'parentcustomerid_account'
        row[`_parentcustomerid_value@${LOOKUP_NAME}`] = 'account'
      }
      if (!wanted.formatted) continue
      if (names.has(row._parentcustomerid_value)) {
        annotate(row, '_parentcustomerid_value', names.get(row._parentcustomerid_value))
      }
      formatDates(row)
      if (row.parentcustomerid_account) formatAccount(row.parentcustomerid_account)
    }
  })

  this.before(['CREATE', 'UPDATE'], 'contacts', async (req) => {
    const id = req.data._parentcustomerid_value
    if (!id) return
    const found = await SELECT.one.from(accounts).columns('accountid').where({ accountid: id })
    if (!found) req.reject({ status: 404, code: '0x80040217', message: `account With Id = ${id} Does Not Exist` })
  })
})
