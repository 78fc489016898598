using {ib.dataverse as dv} from '../db/dataverse';

// Served at /api/data/v9.2/ behind server.js's bearer-token gateway, which lets only access tokens
// of the identity peer for this origin through (as the user "dataverse-app").
namespace Microsoft.Dynamics;

@path    : '/api/data/v9.2'
@requires: 'authenticated-user'
service CRM {
  entity accounts as projection on dv.accounts;
  entity contacts as projection on dv.contacts;
  entity systemusers as projection on dv.systemusers;

  type WhoAmIResponse {
    BusinessUnitId : UUID;
    UserId         : UUID;
    OrganizationId : UUID;
  }

  function WhoAmI() returns WhoAmIResponse;
}
