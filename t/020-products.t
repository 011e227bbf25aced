#!/usr/bin/perl
# Products: the paged list (ordered by id, with total) and one product,
# with the stock committed at query time; bad page/size/id are 400.  The
# document of a product without options (every demo product): the keys of
# before, then status, store, description, category, options, its one
# default variant and images (t/140 covers options).

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->write_config($t->default_config);
$t->start_nginx;

# What the database holds, as the API should show it.
sub products {
    my ($offset, $limit) = @_;
    return $t->psql_json(qq{SELECT coalesce(json_agg(json_build_object(
        'id', id, 'name', name, 'price', price, 'stock', stock,
        'status', status, 'storeId', store_id, 'description', description,
        'category', NULL, 'options', options,
        'variants', (SELECT json_agg(json_build_object('id', v.id, 'sku', v.sku,
                         'optionValues', v.option_values,
                         'price', p.price + v.price_delta, 'stock', v.stock,
                         'status', v.status) ORDER BY v.id)
                       FROM product_variants v WHERE v.product_id = p.id),
        'images', '[]'::json) ORDER BY id),
        '[]') FROM (SELECT * FROM products ORDER BY id
                    OFFSET $offset LIMIT $limit) p});
}

my $total = 0 + $t->psql('SELECT count(*) FROM products');
is($total, 200, 'demo catalogue has 200 products');

# --- the list --------------------------------------------------------------

is_response($t->get('/api/v1/products', user => 1), 200,
    { items => products(0, 20), page => 0, size => 20, total => 200 },
    'default page=0 size=20');
is_response($t->get('/api/v1/products?page=0&size=20', user => 1), 200,
    { items => products(0, 20), page => 0, size => 20, total => 200 },
    'page=0&size=20');
is_response($t->get('/api/v1/products?page=1&size=20', user => 1), 200,
    { items => products(20, 20), page => 1, size => 20, total => 200 },
    'page=1');
is_response($t->get('/api/v1/products?size=1', user => 1), 200,
    { items => products(0, 1), page => 0, size => 1, total => 200 },
    'size=1');
is_response($t->get('/api/v1/products?size=1&page=199', user => 1), 200,
    { items => products(199, 1), page => 199, size => 1, total => 200 },
    'size=1, last page');
is_response($t->get('/api/v1/products?size=100', user => 1), 200,
    { items => products(0, 100), page => 0, size => 100, total => 200 },
    'size=100');
is_response($t->get('/api/v1/products?page=1&size=100', user => 1), 200,
    { items => products(100, 100), page => 1, size => 100, total => 200 },
    'size=100, page 1');
is_response($t->get('/api/v1/products?page=7&size=30', user => 1), 200,
    { items => products(210, 30), page => 7, size => 30, total => 200 },
    'partial last page');
is_response($t->get('/api/v1/products?page=2&size=100', user => 1), 200,
    { items => [], page => 2, size => 100, total => 200 },
    'past the end: empty items');
is_response($t->get('/api/v1/products?page=10000000&size=100', user => 1),
    200, { items => [], page => 10000000, size => 100, total => 200 },
    'largest page the module allows (10,000,000): empty items');
is_response($t->get('/api/v1/products?size=5&foo=bar&page=0', user => 1), 200,
    { items => products(0, 5), page => 0, size => 5, total => 200 },
    'unknown query arguments ignored');

my $before = $t->db_state;
for my $q ('size=0', 'size=101', 'size=-1', 'size=abc', 'size=', 'size=1.5',
    'size=1e1', 'size=%2010', 'size=99999999999999999999', 'page=-1',
    'page=abc', 'page=', 'page=1.5', 'page=10000001', 'page=2147483647',
    'page=2147483648',
    'page=99999999999999999999', 'page=0x10', 'size=20%20OR%201=1',
    "page=0;DROP%20TABLE%20products")
{
    is_error($t->get("/api/v1/products?$q", user => 1), 400,
        'INVALID_REQUEST', "list ?$q");
}
is_deeply($t->db_state, $before, 'bad lists changed nothing');

is_error($t->get('/api/v1/products'), 401, 'UNAUTHORIZED', 'list needs a token');

# --- one product -----------------------------------------------------------

# a product with a name that needs escaping, and known values
$t->psql(q{UPDATE products SET name = 'Café "five" \ tab	end ☕',
    price = 12345, stock = 42 WHERE id = 5});

is_response($t->get('/api/v1/products/5', user => 1), 200,
    { id => 5, name => "Café \"five\" \\ tab\tend ☕", price => 12345,
      stock => 42, status => 'ON_SALE', storeId => undef, description => '',
      category => undef, options => [],
      variants => [ { id => 5, sku => undef, optionValues => [],
                      price => 12345, stock => 42, status => 'ON_SALE' } ],
      images => [] }, 'GET /products/5 exact body');

my $r = $t->get('/api/v1/products/1', user => 1);
is_response($r, 200, products(0, 1)->[0], 'GET /products/1');
is($r->{body}, '{"id":1,"name":"Product 1","price":1000,"stock":1000,'
    . '"status":"ON_SALE","storeId":null,"description":"","category":null,'
    . '"options":[],"variants":[{"id":1,"sku":null,"optionValues":[],'
    . '"price":1000,"stock":1000,"status":"ON_SALE"}],"images":[]}',
    'GET /products/1 exact bytes');

is_response($t->get('/api/v1/products/200', user => 1), 200,
    products(199, 1)->[0], 'GET /products/200 (last)');

# the stock committed now, not a cached one
$t->psql('UPDATE products SET stock = 41 WHERE id = 5');
is($t->get('/api/v1/products/5', user => 1)->{json}{stock}, 41,
    'stock as committed at query time');
is($t->get('/api/v1/products/5', user => 1)->{json}{variants}[0]{stock}, 41,
    '... its default variant holds it (the write went through to it)');
is(products(4, 1)->[0]{stock}, 41, '... and in the list');
is($t->get('/api/v1/products?page=0&size=5', user => 1)->{json}{items}[4]{stock},
    41, 'list shows the committed stock too');

is_error($t->get('/api/v1/products/999999', user => 1), 404,
    'PRODUCT_NOT_FOUND', 'unknown product');
is_error($t->get('/api/v1/products/201', user => 1), 404,
    'PRODUCT_NOT_FOUND', 'just past the last product');
is_error($t->get('/api/v1/products/9223372036854775807', user => 1), 404,
    'PRODUCT_NOT_FOUND', 'largest bigint id');

$before = $t->db_state;
for my $id ('abc', '-1', '99999999999999999999', '9223372036854775808',
    '1.5', '5abc', '0x5', '+5', '05x', '1;DROP%20TABLE%20products',
    "1'%20OR%20'1'='1")
{
    is_error($t->get("/api/v1/products/$id", user => 1), 400,
        'INVALID_REQUEST', "GET /products/$id");
}
is_deeply($t->db_state, $before, 'bad ids changed nothing');

# nginx decodes the URI before the router sees it
is($t->get('/api/v1/products/%35', user => 1)->{json}{id}, 5,
    '/products/%35 is /products/5');
is($t->get('/api/v1/products/5%00', user => 1)->{status}, 400,
    'a NUL in the URI is refused by nginx itself');
is(0 + $t->psql('SELECT count(*) FROM products'), 200, 'products all there');

is_error($t->get('/api/v1/products/5'), 401, 'UNAUTHORIZED',
    'product needs a token');

$t->done;
