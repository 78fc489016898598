using {ib.shop as shop} from '../db/schema';

// Served at /odata/v4/catalog/ and, through the V2 adapter, at /odata/v2/catalog/.
@requires: 'authenticated-user'
service CatalogService {
  entity Categories as projection on shop.Categories;
  entity Products   as projection on shop.Products;
  entity Orders     as projection on shop.Orders;

  @readonly
  entity Suppliers  as projection on shop.Suppliers;
}
