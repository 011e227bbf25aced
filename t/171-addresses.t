#!/usr/bin/perl
# The address book (issue 12 section 2): /api/v1/users/me/addresses, at
# most 10 entries, exactly one default (the first; moved in one
# transaction; a deleted default passes to the newest other address);
# recipient, phone, address1, address2 and memo encrypted at rest with the
# accounts' PII keys, bound to column and row (no plaintext in the table), shown decrypted to their
# owner only (another user's id is 404); zip code and phone validated;
# erased, with the cart, at withdrawal; bad input on every route is 400
# (415 without JSON) and changes nothing; 15 concurrent creates make 10.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use JSON::PP;

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->write_config($t->default_config(
    main_extra => $t->account_main,
    http_extra => $t->account_keys . "commerce_pg_queue_length 2048;"));
$t->start_nginx;

my ($A, $B, $C, $W) = (1, 2, 3, 4);
my $T = JSON::PP::true;
my $F = JSON::PP::false;
my $TS = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
my $BASE = '/api/v1/users/me/addresses';

sub req {
    my ($method, $path, $user, $body, %o) = @_;
    return $t->req($method, $path, user => $user,
        (defined $body ? (body => $body) : ()), %o);
}
sub state { $t->db_state(skip => ['audit_log']) }
sub address {
    my (%a) = @_;
    return { id => defined $a{id} ? 0 + $a{id} : qr/^\d+$/, recipient => $a{recipient},
        phone => $a{phone}, zipCode => $a{zipCode}, address1 => $a{address1},
        address2 => $a{address2}, memo => $a{memo},
        isDefault => $a{isDefault} ? $T : $F, createdAt => $TS,
        updatedAt => $TS };
}
sub defaults {
    my ($user) = @_;
    return join ',', $t->psql("SELECT id FROM user_addresses WHERE user_id ="
        . " $user AND is_default ORDER BY id");
}

my %home = (recipient => '홍길동', phone => '010-1234-5678',
    zipCode => '06236', address1 => '서울 강남구 테헤란로 152',
    address2 => '12층 1201호', memo => '문 앞에 두세요');
my %work = (recipient => 'Kim Chulsoo', phone => '+82-2-555-0100',
    zipCode => '04524', address1 => 'Sejong-daero 110, Jung-gu, Seoul');

# --- create: the first is the default -------------------------------------

is_response(req('GET', $BASE, $A), 200, { items => [] }, 'an empty book');
my $r = req('POST', $BASE, $A, \%home);
is_response($r, 201, address(%home, isDefault => 1),
    'POST: 201, decrypted, the first address is the default');
my $H = $r->{json}{id};
$r = req('POST', $BASE, $A, { %work, isDefault => JSON::PP::false });
is_response($r, 201, address(%work, address2 => undef, memo => undef),
    'a second address without address2 and memo: not the default');
my $K = $r->{json}{id};
is(defaults($A), $H, 'one default: the first');

# --- PII at rest -------------------------------------------------------------

my $rows = join "\n", $t->psql("SELECT t::text FROM user_addresses t");
for my $plain ('홍길동', '010-1234-5678', '테헤란로', '1201', '문 앞',
               'Kim', '555-0100', 'Sejong') {
    unlike($rows, qr/\Q$plain\E/, "no plaintext '$plain' in user_addresses");
}
is($t->psql("SELECT count(*) FROM user_addresses WHERE recipient_ct ~ '^v1\\.'"
    . " AND phone_ct ~ '^v1\\.' AND address1_ct ~ '^v1\\.'"), 2,
    'recipient, phone and address1 are cm_pii ciphertexts');
like($t->psql("SELECT address2_ct || ' ' || memo_ct FROM user_addresses"
    . " WHERE id = $H"), qr/^v1\.\S+ v1\.\S+$/, 'address2 and memo too');
is($t->psql("SELECT zip_code FROM user_addresses WHERE id = $H"), '06236',
    'the zip code in clear');
# a ciphertext moved to another row's column does not open: 500, logged
$t->psql("UPDATE user_addresses SET memo_ct = (SELECT address2_ct FROM"
    . " user_addresses WHERE id = $H) WHERE id = $K");
is_error(req('GET', $BASE, $A), 500, 'INTERNAL_ERROR',
    'a ciphertext of another column does not decrypt');
$t->allow_log(qr/user_addresses\.memo: |an address does not open/);
$t->psql("UPDATE user_addresses SET memo_ct = NULL WHERE id = $K");
# nor one copied to the same column of another address of the same user
$t->psql("UPDATE user_addresses SET recipient_ct = (SELECT recipient_ct FROM"
    . " user_addresses WHERE id = $H) WHERE id = $K");
is_error(req('GET', $BASE, $A), 500, 'INTERNAL_ERROR',
    'a ciphertext of another address (same user, same column) does not'
    . ' decrypt: bound to its row');
$t->allow_log(qr/user_addresses\.recipient: /);
is_response(req('PATCH', "$BASE/$K", $A, { recipient => $work{recipient} }),
    200, address(%work, id => $K, address2 => undef, memo => undef),
    'a PATCH seals it again to its own row');

# --- the default moves, in one transaction --------------------------------

$r = req('POST', $BASE, $A, { %work, address1 => 'Third street 3',
    isDefault => JSON::PP::true });
is($r->{status}, 201, 'a third address as the default: 201');
my $X = $r->{json}{id};
is(defaults($A), $X, 'the default moved to it');
is_response(req('GET', $BASE, $A), 200, { items => [
    address(%work, id => $X, address1 => 'Third street 3', isDefault => 1),
    address(%work, id => $K),
    address(%home, id => $H) ] },
    'GET: the default first, then the newest first, all decrypted');

is_response(req('PATCH', "$BASE/$K", $A, { isDefault => JSON::PP::true }), 200,
    address(%work, id => $K, isDefault => 1), 'PATCH isDefault true');
is(defaults($A), $K, 'the default moved again, still one');
my $before = state();
is_error(req('PATCH', "$BASE/$K", $A, { isDefault => JSON::PP::false }), 400,
    'INVALID_REQUEST', 'PATCH isDefault false on the default: 400');
is_deeply(state(), $before, 'nothing changed');
is_response(req('PATCH', "$BASE/$H", $A, { isDefault => JSON::PP::false }),
    200, address(%home, id => $H), 'isDefault false on another: no change');

# --- PATCH fields -------------------------------------------------------------

is_response(req('PATCH', "$BASE/$H", $A, { recipient => '김영희',
    zipCode => '13529', address2 => '', memo => undef }), 200,
    address(%home, id => $H, recipient => '김영희', zipCode => '13529',
            address2 => undef, memo => undef),
    'PATCH: recipient and zip changed, address2 and memo cleared');
is($t->psql("SELECT address2_ct IS NULL AND memo_ct IS NULL FROM"
    . " user_addresses WHERE id = $H"), 't', 'cleared in the table');
my $inj = q{'); DROP TABLE users; --};
is_response(req('PATCH', "$BASE/$H", $A, { address2 => $inj }), 200,
    address(%home, id => $H, recipient => '김영희', zipCode => '13529',
            address2 => $inj, memo => undef),
    'an SQL-looking text is just text, returned as given');
is($t->psql("SELECT count(*) FROM users WHERE id = $A"), 1, 'users intact');

# --- another user's ids are 404 -------------------------------------------

$before = state();
is_response(req('GET', $BASE, $B), 200, { items => [] },
    "B sees none of A's addresses");
is_error(req('PATCH', "$BASE/$H", $B, { memo => 'mine' }), 404,
    'ADDRESS_NOT_FOUND', "B's PATCH of A's address: 404");
is_error(req('DELETE', "$BASE/$H", $B), 404, 'ADDRESS_NOT_FOUND',
    "B's DELETE of A's address: 404");
is_error(req('DELETE', "$BASE/99999999", $A), 404, 'ADDRESS_NOT_FOUND',
    'an unknown id: 404');
is_deeply(state(), $before, 'nothing changed');

# --- delete: the default passes to the newest other -----------------------

is_response(req('DELETE', "$BASE/$K", $A), 204, undef,
    'DELETE the default: 204');
is(defaults($A), $X, 'the newest other address is the default');
is_response(req('DELETE', "$BASE/$H", $A), 204, undef,
    'DELETE another: 204');
is(defaults($A), $X, 'the default stays');
is_response(req('DELETE', "$BASE/$X", $A), 204, undef,
    'DELETE the last one: 204');
is_response(req('GET', $BASE, $A), 200, { items => [] }, 'none left');
$r = req('POST', $BASE, $A, \%work);
is_response($r, 201, address(%work, address2 => undef, memo => undef,
    isDefault => 1), 'a new first address is the default again');

# --- at most 10 --------------------------------------------------------------

for my $i (2 .. 10) {
    req('POST', $BASE, $A, { %work, address1 => "Street $i" });
}
is($t->psql("SELECT count(*) FROM user_addresses WHERE user_id = $A"), 10,
    'ten addresses');
$before = state();
is_error(req('POST', $BASE, $A, \%home), 409, 'ADDRESS_BOOK_FULL',
    'the 11th: 409 ADDRESS_BOOK_FULL');
is_deeply(state(), $before, 'nothing changed');

my @res = $t->concurrent([ map { [ 'POST', $BASE,
    { %work, address1 => "Race $_", isDefault => JSON::PP::true },
    { user => $C } ] } 1 .. 15 ]);
is_deeply(tally(@res), { 201 => 10, '409 ADDRESS_BOOK_FULL' => 5 },
    '15 concurrent creates, each wanting the default: 10 made, 5 refused');
is($t->psql("SELECT count(*) || ' ' || count(DISTINCT slot) || ' '"
    . " || count(*) FILTER (WHERE is_default) FROM user_addresses"
    . " WHERE user_id = $C"), '10 10 1', '10 rows, 10 slots, one default');

# --- bad input on every route: 400 (415), nothing changed ----------------

$before = state();
my $long = 'ㄱ' x 201;
my @bad = (
    [ '{"recipient":', 'malformed JSON' ],
    [ '[]', 'not an object' ],
    [ { %home, country => 'KR' }, 'an unknown field' ],
    [ '{"recipient":"a","recipient":"b","phone":"0101234567",'
      . '"zipCode":"12345","address1":"x"}', 'a field twice' ],
    [ { %home, recipient => undef }, 'recipient null' ],
    [ { %home, recipient => 7 }, 'recipient a number' ],
    [ { %home, recipient => '   ' }, 'a blank recipient' ],
    [ { %home, recipient => "a\x{1}b" }, 'a control character' ],
    [ { %home, recipient => 'ㄱ' x 101 }, 'recipient of 101 characters' ],
    [ { %home, address1 => $long }, 'address1 of 201 characters' ],
    [ { %home, memo => 'm' x 101 }, 'memo of 101 characters' ],
    [ { %home, phone => '12345' }, 'a short phone' ],
    [ { %home, phone => '010-1234-5678; DROP' }, 'a phone with letters' ],
    [ { %home, zipCode => '1234' }, 'a zip of 4 digits' ],
    [ { %home, zipCode => 12345 }, 'a zip as a number' ],
    [ { %home, zipCode => q{1' OR '1'='1} }, 'an injection string as zip' ],
    [ { %home, isDefault => 'yes' }, 'isDefault a string' ],
    [ { %home, address2 => { a => 1 } }, 'an object' ],
    [ { %home, address1 => 'x' x 2000 }, 'an overlong text (2,000 bytes)' ],
    [ { phone => '010-1234-5678' }, 'missing fields' ],
);
for my $b (@bad) {
    is_error(req('POST', $BASE, $B, $b->[0]), 400, 'INVALID_REQUEST',
        "POST $b->[1]: 400");
}
for my $b (['{}', 'nothing to change'], [{ recipient => undef },
           'recipient null'], [{ zipCode => '0' }, 'a bad zip'],
           [{ id => 5 }, 'an unknown field'], ['{"memo":', 'malformed']) {
    is_error(req('PATCH', "$BASE/$X", $A, $b->[0]), 400, 'INVALID_REQUEST',
        "PATCH $b->[1]: 400");
}
is_error(req('POST', $BASE, $B, { %home, address1 => 'x' x 100000 }), 413,
    'PAYLOAD_TOO_LARGE', 'POST over the body limit: 413');
is_error(req('POST', $BASE, $B, JSON::PP->new->utf8->encode(\%home),
    content_type => undef), 415, 'UNSUPPORTED_MEDIA_TYPE',
    'POST without Content-Type: 415');
is_error(req('PATCH', "$BASE/1", $A, '{"memo":"x"}',
    content_type => 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE',
    'PATCH as text/plain: 415');
for my $p ('0', 'abc', '1%27%3B', '99999999999999999999999') {
    is_error(req('PATCH', "$BASE/$p", $A, { memo => 'x' }), 400,
        'INVALID_REQUEST', "PATCH $BASE/$p: 400");
    is_error(req('DELETE', "$BASE/$p", $A), 400, 'INVALID_REQUEST',
        "DELETE $BASE/$p: 400");
}
is_error($t->req('GET', $BASE), 401, 'UNAUTHORIZED', 'no token: 401');
is_error(req('PUT', $BASE, $A, {}), 405, 'METHOD_NOT_ALLOWED', 'PUT: 405');
is_deeply(state(), $before, 'bad input changed nothing');

# --- withdrawal erases the book and the cart ------------------------------

req('POST', $BASE, $W, \%home);
req('POST', $BASE, $W, \%work);
req('PUT', '/api/v1/cart/items/3', $W, { quantity => 2 });
is($t->psql("SELECT (SELECT count(*) FROM user_addresses WHERE user_id = $W)"
    . " || ' ' || (SELECT count(*) FROM cart_items WHERE user_id = $W)"),
    '2 1', 'W has two addresses and a cart line');
is_response(req('DELETE', '/api/v1/users/me', $W), 204, undef,
    'W withdraws');
is($t->psql("SELECT (SELECT count(*) FROM user_addresses WHERE user_id = $W)"
    . " || ' ' || (SELECT count(*) FROM cart_items WHERE user_id = $W)"
    . " || ' ' || (SELECT count(*) FROM carts WHERE user_id = $W)"),
    '0 0 0', 'its addresses and cart are gone');
is_error(req('POST', $BASE, $W, \%home), 404, 'USER_NOT_FOUND',
    'a withdrawn user cannot add an address (live token): 404');
is_error(req('PUT', '/api/v1/cart/items/3', $W, { quantity => 1 }), 404,
    'USER_NOT_FOUND', 'nor a cart line');
is($t->psql("SELECT count(*) FROM user_addresses WHERE user_id = $A"), 10,
    "others' books untouched");

$t->done;
