#!/usr/bin/perl
# Search (issue 11 section 4): GET /api/v1/products with q, categoryId,
# minPrice, maxPrice, status, sort.  A substring of the name with white
# space and case ignored, so '가방' finds both '여성가죽 가방' and
# '여성가죽가방'; a 1-syllable query; mixed Korean and ASCII; STOPPED
# products never found; filters, sorts and paging exact against a small
# catalogue whose answers are written out here; bad parameters 400 with
# nothing changed; injection strings are just text.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Encode qw(encode_utf8);
use CommerceTest;

# test names carry Korean: print them as UTF-8
binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->write_config($t->default_config);
$t->start_nginx;

sub esc { join '', map { sprintf '%%%02X', ord } split //, encode_utf8($_[0]) }

# categories: 여성 > 가방 (leaf), and 남성
$t->psql(q{INSERT INTO categories (id, parent_id, parent_depth, depth, name)
    VALUES (901, NULL, NULL, 1, '여성'), (902, 901, 1, 2, '가방'),
           (903, NULL, NULL, 1, '남성')});

my @rows = (
    [ A => '여성가죽 가방',   30000,  5, 902 ],
    [ B => '여성가죽가방',    25000,  0, 902 ],
    [ C => '남성 서류가방',   50000,  3, 903 ],
    [ D => '가방끈',           5000, 10, undef ],
    [ E => '방석',             8000,  2, undef ],
    [ F => 'Nike 운동화',     89000,  7, undef ],
    [ G => 'NIKE AIR 운동화', 120000, 1, undef ],
    [ H => '가방 단종',         100,  5, 902 ],
    [ I => '가 방',             500,  4, undef ],
);
my %id;
for my $r (@rows) {
    my ($k, $name, $price, $stock, $cat) = @$r;
    $id{$k} = 0 + $t->psql("INSERT INTO products (name, price, stock, category_id)
        VALUES ('$name', $price, $stock, " . ($cat // 'NULL') . ") RETURNING id");
}
$t->psql("UPDATE products SET stopped = true WHERE id = $id{H}");
my $listed = 0 + $t->psql('SELECT count(*) FROM products WHERE NOT stopped');
is($listed, 208, '200 demo products and 8 of ours listed (H is STOPPED)');

# the ids of an answer, as letters (demo products as their id)
my %key = reverse %id;
sub found {
    my ($args, $name) = @_;
    my $r = $t->get("/api/v1/products?$args", user => 1);
    is($r->{status}, 200, "$name: 200") or diag($r->{raw});
    return ([ map { $key{ $_->{id} } // $_->{id} } @{ $r->{json}{items} // [] } ],
            $r->{json}{total}, $r);
}
sub search_is {
    my ($args, $exp, $total, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($got, $tot) = found($args, $name);
    is_deeply($got, $exp, "$name: @$exp");
    is($tot, $total // scalar @$exp, "$name: total");
}

my $bag = esc('가방');

# --- the Korean substring ----------------------------------------------------
search_is("q=$bag", [qw(I D B C A)], undef,
    "q=가방: both '여성가죽 가방' and '여성가죽가방', '가 방' too; not the STOPPED one; relevance");
search_is('q=' . esc('가 방'), [qw(I D B C A)], undef, "q='가 방': spaces ignored");
search_is('q=' . esc('가') . '+' . esc('방'), [qw(I D B C A)], undef,
    "q=가+방: a form's '+' is a space");
search_is('q=' . esc('방'), [qw(I E D C B A)], undef,
    'q=방: one syllable (the unigram path), relevance is newest first');
search_is('q=' . esc('방') . '&sort=price', [qw(I D E B A C)], undef,
    'q=방&sort=price');
search_is('q=' . esc('가죽가방'), [qw(B A)], undef, 'q=가죽가방: 4 syllables');
search_is('q=' . esc('단종'), [], 0, 'q=단종: only in a STOPPED product');
search_is('q=nike', [qw(F G)], undef, 'q=nike: case ignored');
search_is('q=' . esc('nike운동'), [qw(F)], undef, 'q=nike운동: mixed Korean/ASCII');
search_is('q=' . esc('AIR 운'), [qw(G)], undef, "q='AIR 운': mixed, with a space");
search_is('q=' . esc('가방끈x'), [], 0, 'no match: empty');

# --- filters -----------------------------------------------------------------
search_is("q=$bag&status=SOLD_OUT", [qw(B)], undef, 'status=SOLD_OUT');
search_is("q=$bag&status=ON_SALE", [qw(I D C A)], undef, 'status=ON_SALE');
search_is('status=SOLD_OUT&sort=newest', [qw(B)], undef,
    'status=SOLD_OUT without q: its pseudo-gram alone');
is($t->psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM products
              WHERE search_grams @> ARRAY[E'\\x01sold_out']"), $id{B},
    'the SOLD_OUT pseudo-gram: B only');
# the pseudo-gram follows the stock, whoever writes it: D sells out through
# its variant (as an order does), then is restocked by a direct write of
# products.stock (whose trigger sets on_sale_variants itself)
my $sold = sub { $t->psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM products
                           WHERE search_grams @> ARRAY[E'\\x01sold_out']") };
$t->psql("UPDATE product_variants SET stock = 0 WHERE product_id = $id{D}");
is($sold->(), join(',', sort { $a <=> $b } @id{qw(B D)}), 'D sold out: its pseudo-gram');
search_is("q=$bag&status=SOLD_OUT", [qw(D B)], undef, 'D sold out: found as SOLD_OUT');
$t->psql("UPDATE products SET stock = 10 WHERE id = $id{D}");
is($sold->(), $id{B}, 'D restocked by products.stock: the pseudo-gram gone');
search_is("q=$bag&status=SOLD_OUT", [qw(B)], undef, 'D back on sale');
$t->psql("UPDATE products SET name = '여성가죽가방 리뉴얼' WHERE id = $id{B}");
is($sold->(), $id{B}, 'B renamed: still SOLD_OUT in its grams');
search_is('q=' . esc('리뉴얼') . '&status=SOLD_OUT', [qw(B)], undef, '... and found by its new name');
$t->psql("UPDATE products SET name = '여성가죽가방' WHERE id = $id{B}");
search_is("q=$bag&minPrice=25000&maxPrice=30000", [qw(B A)], undef,
    'minPrice..maxPrice, inclusive');
search_is("q=$bag&minPrice=30001", [qw(C)], undef, 'minPrice alone');
search_is("q=$bag&maxPrice=2000", [qw(I)], undef, 'maxPrice alone');
search_is("categoryId=901&sort=price", [qw(B A)], undef,
    'categoryId of a parent: its subtree (the STOPPED one left out)');
search_is("categoryId=902&sort=newest", [qw(B A)], undef, 'categoryId of the leaf');
search_is("q=$bag&categoryId=903", [qw(C)], undef, 'q and categoryId');
is_error($t->get('/api/v1/products?categoryId=999999', user => 1), 404,
    'CATEGORY_NOT_FOUND', 'unknown categoryId: 404');

# --- sorts and paging ----------------------------------------------------------
search_is("q=$bag&sort=relevance", [qw(I D B C A)], undef, 'sort=relevance');
search_is("q=$bag&sort=price", [qw(I D B A C)], undef, 'sort=price');
search_is("q=$bag&sort=newest", [qw(I D C B A)], undef, 'sort=newest');
$t->psql("INSERT INTO product_sales_daily (day, product_id, quantity, revenue)
    VALUES (cm__sales_day(now()), $id{A}, 10, 300000),
           (cm__sales_day(now()) - 3, $id{C}, 3, 150000),
           (cm__sales_day(now()) - 60, $id{B}, 99, 99)");
search_is("q=$bag&sort=sales", [qw(A C I D B)], undef,
    'sort=sales: units of the last 30 days, then newest');
search_is("q=$bag&sort=sales&size=2&page=1", [qw(I D)], 5,
    'sort=sales, page 1: the sold ones end on page 0, the unsold follow');
search_is("q=$bag&sort=sales&size=3&page=0", [qw(A C I)], 5,
    'sort=sales, a page across both');
search_is("q=$bag&sort=price&size=2", [qw(I D)], 5, 'page 0 of size 2');
search_is("q=$bag&sort=price&size=2&page=1", [qw(B A)], 5, 'page 1');
search_is("q=$bag&sort=price&size=2&page=2", [qw(C)], 5, 'page 2 (partial)');
search_is("q=$bag&sort=price&size=2&page=3", [], 5, 'past the end: empty');
my ($got, $tot, $r) = found('sort=price&size=3', 'no q, sort=price');
is_deeply($got, [qw(I 1 2)], '... the cheapest listed first (H, cheaper, is STOPPED)')
    or diag explain $got;
is($tot, 208, '... total: the listed products');
is($r->{json}{totalExact}, 1, '... exact (fewer than 10,000)');
is_deeply($r->{json}{items}[0],
    $t->get("/api/v1/products/$id{I}", user => 1)->{json},
    "a search item is the product's document");
($got, $tot) = found('sort=newest&size=2', 'no q, newest');
is_deeply($got, [qw(I G)], '... newest first, STOPPED left out');

# STOPPED never appears, whatever the query
for my $args ("q=$bag&size=100", 'q=' . esc('방') . '&sort=price',
    "categoryId=902", 'sort=price&size=100', "q=$bag&status=ON_SALE",
    'minPrice=100&maxPrice=100', 'sort=sales&size=100&page=0')
{
    my ($g) = found($args, "STOPPED: $args");
    ok(!grep({ $_ eq 'H' } @$g), "STOPPED not in ?$args");
}

# --- bad parameters --------------------------------------------------------------
my $before = $t->db_state;
for my $q ('q=', 'q=%20%20', 'q=%FF', 'q=%00', 'q=a%0Ab', 'q=' . ('a' x 101),
    'q=' . esc('가' x 101), 'categoryId=0', 'categoryId=-1', 'categoryId=abc',
    'categoryId=1.5', 'categoryId=', 'minPrice=-1', 'minPrice=abc', 'minPrice=',
    'maxPrice=1e3', 'maxPrice=1000000000001', 'minPrice=10&maxPrice=5',
    'status=STOPPED', 'status=on_sale', 'status=', 'sort=foo', 'sort=PRICE',
    'sort=', "q=$bag&page=-1", "q=$bag&size=101", "q=$bag&size=0",
    "q=$bag&page=50", "q=$bag&size=100&page=10", 'sort=price&page=50',
    'sort=price%3BDROP%20TABLE%20products')
{
    is_error($t->get("/api/v1/products?$q", user => 1), 400,
        'INVALID_REQUEST', "?$q");
}
# injection strings are only text to look for
for my $s ("' OR '1'='1", "'; DROP TABLE products; --", '%', '_', '\\',
    '$1', "가방' OR 1=1 --", '%%%', 'a%_b')
{
    search_is('q=' . esc($s), [], 0, "q=$s: nothing, harmlessly");
}
is_deeply($t->db_state, $before, 'bad and hostile queries changed nothing');

# a search is not cached (README "Search"): a rename is seen at once
$t->psql("UPDATE products SET name = '남성 서류 가방 NEW' WHERE id = $id{C}");
search_is('q=' . esc('방new'), [qw(C)], undef, 'renamed: its grams follow (trigger)');

is_error($t->get("/api/v1/products?q=$bag"), 401, 'UNAUTHORIZED', 'needs a token');

# white space is ' ', \t, \n, \r, \f, \v, NBSP and the ideographic space
# (U+3000), not the letter v (E'\v' is a 'v' to PostgreSQL)
is($t->psql("SELECT cm__search_norm(E'Vivid\\x0Bvase\\u3000가\\u00A0방')"),
    encode_utf8('vividvase가방'), 'cm__search_norm: v kept, white space removed');
my ($vg) = found('q=v', 'q=v: a query, not blank');

# --- past 10,000 matches (README "Search") -----------------------------------
# the total is counted up to 10,000; pages reach the first 1,000 results;
# relevance ranks the 1,000 newest matches
$t->psql(q{INSERT INTO products (name, price, stock)
    SELECT 'capz' || i, 1000 + i, 1 FROM generate_series(1, 10050) i});
($got, $tot, $r) = found('q=capz&size=3', 'q=capz: 10,050 matches');
is($tot, 10000, '... total: 10000');
ok(defined $r->{json}{totalExact} && !$r->{json}{totalExact},
    '... totalExact: false');
is_deeply([ map { $_->{name} } @{ $r->{json}{items} } ],
    [qw(capz9999 capz9998 capz9997)],
    '... relevance among the 1,000 newest (capz9051..capz10050): shortest first');
($got, $tot, $r) = found('q=capz&sort=price&page=49', 'q=capz, price, page 49');
is_deeply([ map { $_->{name} } @{ $r->{json}{items} }[0, 19] ],
    [qw(capz981 capz1000)], '... the window\'s last page: results 981..1000');
($got, $tot, $r) = found('q=capz10050', 'q=capz10050: one match');
is($tot, 1, '... total: 1');
is($r->{json}{totalExact}, 1, '... exact');
is_error($t->get('/api/v1/products?q=capz&sort=price&page=50', user => 1), 400,
    'INVALID_REQUEST', 'page 50 of 20: past the window');
($got) = found('page=50', 'the plain list is not a search: page 50');
# the sales rows above have no orders behind them
$t->psql('DELETE FROM product_sales_daily');
$t->check_consistency;
$t->done;
