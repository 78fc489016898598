// The shop model the SAP OData peer serves: one of each Edm type the providers map, to-one and
// to-many associations, managed fields with an ETag, and enough Products rows for list benchmarks.
namespace ib.shop;

using {
  cuid,
  managed
} from '@sap/cds/common';

entity Categories {
  key ID          : Integer;
      name        : String(60) not null;
      description : String(255);
      products    : Association to many Products
                      on products.category = $self;
}

entity Suppliers {
  key ID       : UUID;
      name     : String(100) not null;
      country  : String(2);
      rating   : Double;
      products : Association to many Products
                   on products.supplier = $self;
}

entity Products : managed {
  key ID            : Integer;
      name          : String(80) not null;
      description   : String(1000);
      price         : Decimal(10, 2);
      currency      : String(3);
      stock         : Integer;
      releaseDate   : Date;
      availableFrom : DateTime;
      discontinued  : Boolean default false;
      category      : Association to Categories;
      supplier      : Association to Suppliers;
}

entity Orders : cuid, managed {
  product  : Association to Products;
  quantity : Integer not null;
  note     : String(200);
}

annotate Products with {
  modifiedAt @odata.etag;
}

annotate Orders with {
  modifiedAt @odata.etag;
}
