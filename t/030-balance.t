#!/usr/bin/perl
# Balance: get, charge (with its ledger row), every kind of bad amount or
# body, the charge and balance limits, 413/415; each error leaves the
# balance and the ledger as they were.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
$t->write_config($t->default_config(http_extra => <<'EOF'));
commerce_charge_max 50000;
commerce_balance_max 1000000;
EOF
$t->start_nginx;

sub charge {
    my ($user, $body, %o) = @_;
    return $t->post('/api/v1/balance/charge', $body, user => $user, %o);
}

sub last_ledger {
    my ($user) = @_;
    return scalar $t->psql("SELECT kind, amount, balance_after, order_id IS NULL
        FROM balance_ledger WHERE user_id = $user ORDER BY id DESC LIMIT 1");
}

# --- get and charge ----------------------------------------------------------

is_response($t->get('/api/v1/balance', user => 1), 200,
    { userId => 1, balance => 100000 }, 'GET /balance');

is_response(charge(1, { amount => 1000 }), 200,
    { userId => 1, balance => 101000 }, 'charge 1000');
is(last_ledger(1), 'CHARGE|1000|101000|t', 'ledger row with balance_after');
is($t->psql('SELECT balance FROM users WHERE id = 1'), 101000, 'users.balance');
is_response($t->get('/api/v1/balance', user => 1), 200,
    { userId => 1, balance => 101000 }, 'GET /balance after the charge');

is_response(charge(1, '{"amount":1}'), 200,
    { userId => 1, balance => 101001 }, 'charge 1 (smallest)');
is_response(charge(1, { amount => 50000 }), 200,
    { userId => 1, balance => 151001 }, 'charge 50000 (commerce_charge_max)');
is_response(charge(1, '  {"amount" : 9 }  '), 200,
    { userId => 1, balance => 151010 }, 'whitespace around JSON');
is_response(charge(1, '{"amount":10,"currency":"KRW","note":{"a":[1,2,{}]},'
    . '"flag":true,"n":null,"f":1.5}'), 200,
    { userId => 1, balance => 151020 }, 'unknown fields ignored');
is_response(charge(1, '{"note":"' . ('[' x 10) . '","amount":10}'), 200,
    { userId => 1, balance => 151030 }, 'unknown string field with brackets');
is_response(charge(1, '{"x":' . ('[' x 5) . (']' x 5) . ',"amount":10}'),
    200, { userId => 1, balance => 151040 },
    'unknown nested arrays ignored (6 levels)');
is_response(charge(1, { amount => 10 },
    content_type => 'application/json; charset=utf-8'), 200,
    { userId => 1, balance => 151050 }, 'application/json with charset');
is_response(charge(1, { amount => 10 }, chunked => 1), 200,
    { userId => 1, balance => 151060 }, 'chunked request body');
is(0 + $t->psql('SELECT count(*) FROM balance_ledger WHERE user_id = 1'), 9,
    'one ledger row per charge');
is($t->psql('SELECT sum(amount) FROM balance_ledger WHERE user_id = 1'), 51060,
    'ledger sum = charged total');
$t->check_consistency('balance matches the ledger');

# --- bad amounts and bodies: 400, nothing changes ----------------------------

my $before = $t->db_state;

my @bad = (
    '{"amount":0}', '{"amount":-5}', '{"amount":-0}', '{"amount":1.5}',
    '{"amount":100.0}', '{"amount":"100"}', '{"amount":1e3}', '{"amount":1E3}',
    '{"amount":9223372036854775807}', '{"amount":9223372036854775808}',
    '{"amount":-9223372036854775808}', '{"amount":-9223372036854775809}',
    '{"amount":99999999999999999999999999}', '{"amount":null}',
    '{"amount":true}', '{"amount":false}', '{"amount":[100]}',
    '{"amount":{"value":100}}', '{"amount":""}', '{}', '{"Amount":100}',
    '{"amount":50001}', '{"amount":1000000}',
    '{"amount":"1; DROP TABLE users; --"}', q({"amount":"1' OR '1'='1"}),
    '[100]', '[{"amount":100}]', '100', '"100"', 'null', 'true', '""', '',
    ' ', '{"amount":01}', '{"amount":+1}', '{"amount":.5}', '{"amount":0x10}',
    '{"amount":1', '{"amount":1}}', '{"amount":1},', '{"amount":1}{"amount":2}',
    '{amount:1}', "{'amount':1}", '{"amount":1,}', '{"amount" 1}',
    'not json', "{\"amount\":1\x00}", "\xff\xfe{\"amount\":1}",
    '{"amount":NaN}', '{"amount":Infinity}', '{"amount":1' . ' ' x 100,
    '{"x":"' . "\x01" . '","amount":1}',
    '{"x":' . ('[' x 20) . (']' x 20) . ',"amount":1}',   # deeper than 8
    '{"x":' . ('{"y":' x 20) . '1' . ('}' x 20) . ',"amount":1}',
);
for my $body (@bad) {
    (my $show = $body) =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
    $show = substr($show, 0, 60);
    is_error(charge(2, $body), 400, 'INVALID_REQUEST', "charge body $show");
}
is_deeply($t->db_state, $before, 'bad amounts changed nothing');

# deeply nested junk must not crash the parser (and is not a valid request)
my $r = charge(4, '{"x":' . ('[' x 5000) . (']' x 5000) . ',"amount":1}');
ok($r->{status} == 400 || $r->{status} == 200,
    'deep nesting: 400 or ignored') or diag($r->{raw});
is_deeply($t->db_state, $before, 'deep nesting changed nothing')
    if $r->{status} == 400;

# --- the balance cap -------------------------------------------------------

# user 3: 100000 + 18 x 50000 = 1000000 = commerce_balance_max exactly
for my $i (1 .. 18) {
    my $r = charge(3, { amount => 50000 });
    $r->{status} == 200 or is($r->{status}, 200, "charge $i to the cap");
}
is_response($t->get('/api/v1/balance', user => 3), 200,
    { userId => 3, balance => 1000000 }, 'balance at the cap is allowed');
$before = $t->db_state;
is_error(charge(3, { amount => 1 }), 400, 'BALANCE_LIMIT_EXCEEDED',
    'one over the cap');
is_error(charge(3, { amount => 50000 }), 400, 'BALANCE_LIMIT_EXCEEDED',
    'charge_max over the cap');
is_error(charge(3, { amount => 50001 }), 400, 'INVALID_REQUEST',
    'over charge_max (checked before the cap)');
is_deeply($t->db_state, $before, 'refused charges changed nothing');
is_response($t->get('/api/v1/balance', user => 3), 200,
    { userId => 3, balance => 1000000 }, 'balance still at the cap');
is(last_ledger(3), 'CHARGE|50000|1000000|t', 'last ledger row is the last '
    . 'accepted charge');

# --- media type and size -----------------------------------------------------

$before = $t->db_state;
is_error(charge(2, { amount => 100 }, content_type => undef), 415,
    'UNSUPPORTED_MEDIA_TYPE', 'no Content-Type');
is_error(charge(2, { amount => 100 }, content_type => 'text/plain'), 415,
    'UNSUPPORTED_MEDIA_TYPE', 'text/plain');
is_error(charge(2, { amount => 100 },
    content_type => 'application/x-www-form-urlencoded'), 415,
    'UNSUPPORTED_MEDIA_TYPE', 'form-urlencoded');
is_error(charge(2, { amount => 100 }, content_type => 'application/jsonx'),
    415, 'UNSUPPORTED_MEDIA_TYPE', 'application/jsonx');

my $pad = 'x' x (1024 * 1024);
is_error(charge(2, qq({"amount":100,"pad":"$pad"})), 413,
    'PAYLOAD_TOO_LARGE', '1 MB body');
is_error(charge(2, qq({"amount":100,"pad":"$pad"}), chunked => 1), 413,
    'PAYLOAD_TOO_LARGE', '1 MB chunked body');

# commerce_body_max is 64k by default: 65536 bytes pass, 65537 do not
my $head = '{"amount":7,"pad":"';
my $fill = 65536 - length($head) - 2;
is_error(charge(2, $head . ('y' x ($fill + 1)) . '"}'), 413,
    'PAYLOAD_TOO_LARGE', 'body of 65537 bytes');
is_error(charge(2, $head . ('y' x ($fill + 1)) . '"}', chunked => 1), 413,
    'PAYLOAD_TOO_LARGE', 'chunked body of 65537 bytes');
is_deeply($t->db_state, $before, 'rejected bodies changed nothing');

is_response(charge(2, $head . ('y' x $fill) . '"}'), 200,
    { userId => 2, balance => 100007 }, 'body of exactly 65536 bytes');
is_response(charge(2, $head . ('y' x $fill) . '"}', chunked => 1,
    chunk_size => 1000), 200, { userId => 2, balance => 100014 },
    'chunked body of 65536 bytes in small chunks');

# --- a user the database does not know ---------------------------------------

$before = $t->db_state;
is_error($t->get('/api/v1/balance', user => 5000), 404, 'USER_NOT_FOUND',
    'GET /balance of an unknown user');
is_error(charge(5000, { amount => 100 }), 404, 'USER_NOT_FOUND',
    'charge an unknown user');
is_deeply($t->db_state, $before, 'nothing changed, no ledger row');

$t->check_consistency;
$t->done;
