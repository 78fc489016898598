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

// Users of the environment, application users among them (accessmode 4, "non-interactive", with the
// app registration's client id as applicationid), and the security roles they hold: what a
// connection test reads to say who it is connected as, and what decides whether a user may read.
entity systemusers {
  key systemuserid                 : UUID;
      fullname                     : String(200);
      domainname                   : String(1024);
      applicationid                : UUID;
      azureactivedirectoryobjectid : UUID;
      accessmode                   : Integer default 0; // 0 read-write, 4 non-interactive
      isdisabled                   : Boolean default false;
}

entity roles {
  key roleid : UUID;
      name   : String(100) not null;
}

// The intersect table of the systemuser-role N:N relationship (systemuserroles_association).
entity systemuserroles {
  key systemuserroleid : UUID;
      systemuserid     : UUID;
      roleid           : UUID;
}
