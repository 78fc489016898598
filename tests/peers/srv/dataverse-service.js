'use strict'
// WhoAmI as Dataverse answers it: the caller's user id (the gateway passes the token's object id on).
const cds = require('@sap/cds')

const ORGANIZATION_ID = '6f0c7a54-3d1e-4b2a-9c8f-1e2d3c4b5a69'
const BUSINESS_UNIT_ID = '2b9d4e61-7a3c-4f5e-8d1b-0c9a8b7e6f54'

module.exports = cds.service.impl(function () {
  this.on('WhoAmI', (req) => ({
    BusinessUnitId: BUSINESS_UNIT_ID,
    UserId: req.headers['x-ib-object-id'],
    OrganizationId: ORGANIZATION_ID,
  }))
})
