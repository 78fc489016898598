// A Dataverse-shaped model for the Microsoft Dataverse peer (served at /api/data/v9.2/): tables with
// GUID keys, a choice column (an option set value, an Integer as in Dataverse's $metadata), a lookup
// as Dataverse spells it (_<name>_value plus a single-valued navigation) and a row version ETag.
namespace ib.dataverse;

entity accounts {
  key accountid          : UUID;
      name               : String(160) not null;
      accountnumber      : String(20);
      industrycode       : Integer; // choice: 1 Accounting, 2 Agriculture, 3 Broadcasting, ...
      revenue            : Decimal(19, 4);
      numberofemployees  : Integer;
      statecode          : Integer default 0;
      createdon          : Timestamp @cds.on.insert: $now;
      modifiedon         : Timestamp @cds.on.insert: $now  @cds.on.update: $now;
      contact_customer_accounts : Association to many contacts
                                    on contact_customer_accounts._parentcustomerid_value = accountid;
}

entity contacts {
  key contactid                : UUID;
      firstname                : String(50);
      lastname                 : String(50) not null;
      emailaddress1            : String(100);
      _parentcustomerid_value  : UUID;
      parentcustomerid_account : Association to accounts
                                   on parentcustomerid_account.accountid = _parentcustomerid_value;
      createdon                : Timestamp @cds.on.insert: $now;
      modifiedon               : Timestamp @cds.on.insert: $now  @cds.on.update: $now;
}

annotate accounts with {
  modifiedon @odata.etag;
}

annotate contacts with {
  modifiedon @odata.etag;
}
