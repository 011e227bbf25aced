#!/usr/bin/perl
# Points (issue 12 section 3, the ledger and an ADMIN's grant): a buyer
# reads its points and their movements; an ADMIN grants and takes back
# points with a reason (audited, Idempotency-Key honoured); more taken
# than held is 409 INSUFFICIENT_POINTS and changes nothing, also with 50
# ADMIN revokes at once; a withdrawn user's points never move; bad bodies
# 400 changing nothing; the ledger sums to the points (check_consistency).

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
$t->write_config($t->default_config(
    main_extra => $t->account_main,
    http_extra => $t->account_keys . "commerce_zone 1m;"));
$t->start_nginx;

my ($ADM, $MGR, $U, $V) = (13, 12, 30, 31);
$t->psql("UPDATE users SET role = 'ADMIN' WHERE id = $ADM;
          UPDATE users SET role = 'MANAGER' WHERE id = $MGR;");
my %tok = (ADM => $t->token($ADM, role => 'ADMIN'),
    MGR => $t->token($MGR, role => 'MANAGER'), U => $t->token($U),
    V => $t->token($V));
sub req {
    my ($method, $path, $who, $body, %h) = @_;
    return $t->req($method, $path, token => $tok{$who},
        (defined $body ? (body => $body) : ()), %h);
}
sub state { $t->db_state(skip => ['audit_log']) }
sub grant { req('POST', "/api/v1/admin/users/$_[0]/points", 'ADM', $_[1], @_[2 .. $#_]) }

is_response(req('GET', '/api/v1/users/me/points', 'U'), 200,
    { userId => 0 + $U, points => 0, items => [] }, 'no points yet');

for my $who ('U', 'MGR') {
    is_error(req('POST', "/api/v1/admin/users/$U/points", $who,
        { amount => 100, reason => 'x' }), 403, 'FORBIDDEN',
        "$who grants nothing: 403");
}

my $r = grant($U, { amount => 10000, reason => '가입 축하' });
is_response($r, 200, { userId => 0 + $U, points => 10000, entry => {
    id => qr/^\d+$/, kind => 'GRANT', amount => 10000, pointsAfter => 10000,
    orderId => undef, actorId => 0 + $ADM, reason => '가입 축하',
    createdAt => qr/Z$/ } }, 'ADMIN grants 10,000');
$r = grant($U, { amount => -3000, reason => 'correction' });
is_response($r, 200, { userId => 0 + $U, points => 7000, entry => {
    id => qr/^\d+$/, kind => 'REVOKE', amount => -3000, pointsAfter => 7000,
    orderId => undef, actorId => 0 + $ADM, reason => 'correction',
    createdAt => qr/Z$/ } }, 'and takes back 3,000');

$r = req('GET', '/api/v1/users/me/points', 'U');
is($r->{json}{points}, 7000, 'the buyer sees 7,000');
is_deeply([ map { "$_->{kind} $_->{amount} $_->{pointsAfter}" }
    @{ $r->{json}{items} } ], [ 'REVOKE -3000 7000', 'GRANT 10000 10000' ],
    'and the movements, newest first');
is(scalar @{ req('GET', '/api/v1/users/me/points?limit=1', 'U')->{json}{items} },
    1, 'limit=1');
is_response(req('GET', '/api/v1/users/me/points', 'V'), 200,
    { userId => 0 + $V, points => 0, items => [] }, "V sees none of U's");

is($t->psql("SELECT string_agg(actor_id || ':' || user_id || ':' || (detail::jsonb->>'amount'),"
    . " ',' ORDER BY id) FROM audit_log WHERE event = 'POINTS_GRANT'"),
    "$ADM:$U:10000,$ADM:$U:-3000", 'both audited: who, whom, how much');

# --- refused: nothing changes ----------------------------------------------

my $before = state();
is_error(grant($U, { amount => -7001, reason => 'too much' }), 409,
    'INSUFFICIENT_POINTS', 'taking 7,001 of 7,000: 409');
is_error(grant(999999, { amount => 5, reason => 'x' }), 404,
    'USER_NOT_FOUND', 'an unknown user: 404');
for my $bad (
    [ '{', 'cut JSON' ], [ '[]', 'an array' ], [ '{}', 'nothing' ],
    [ { amount => 5 }, 'no reason' ], [ { reason => 'x' }, 'no amount' ],
    [ { amount => 0, reason => 'x' }, '0' ],
    [ { amount => 100000001, reason => 'x' }, 'over 100,000,000' ],
    [ '{"amount":1.5,"reason":"x"}', 'a fraction' ],
    [ '{"amount":1e3,"reason":"x"}', 'an exponent' ],
    [ '{"amount":99999999999999999999,"reason":"x"}', 'overflow' ],
    [ { amount => '5', reason => 'x' }, 'a string amount' ],
    [ { amount => 5, reason => '' }, 'an empty reason' ],
    [ { amount => 5, reason => '가' x 201 }, 'a reason of 201 characters' ],
    [ { amount => 5, reason => 'x', userId => 1 }, 'an unknown field' ],
    [ '{"amount":5,"amount":6,"reason":"x"}', 'amount twice' ],
    [ { amount => 5, reason => "x'); DROP TABLE points_ledger;--", extra => 1 },
      'an injection string with an unknown field' ]) {
    is_error(grant($U, $bad->[0]), 400, 'INVALID_REQUEST', "$bad->[1]: 400");
}
is_error(req('POST', '/api/v1/admin/users/abc/points', 'ADM',
    { amount => 5, reason => 'x' }), 400, 'INVALID_REQUEST', 'a bad user id');
for my $q ('limit=0', 'limit=201', 'limit=x') {
    is_error(req('GET', "/api/v1/users/me/points?$q", 'U'), 400,
        'INVALID_REQUEST', "?$q: 400");
}
is_deeply(state(), $before, 'the refused calls changed nothing');

$r = grant($U, { amount => 5, reason => "x'); DROP TABLE points_ledger;--" });
is($r->{status}, 200, 'an injection string is only a reason');
is($r->{json}{entry}{reason}, "x'); DROP TABLE points_ledger;--",
    'kept as it was sent');

# --- Idempotency-Key ----------------------------------------------------------

my $key = 'grant-' . time;
my $a1 = grant($V, { amount => 700, reason => 'event' },
    headers => { 'Idempotency-Key' => $key });
my $a2 = grant($V, { amount => 700, reason => 'event' },
    headers => { 'Idempotency-Key' => $key });
is($a1->{status}, 200, 'a grant under a key');
is_deeply($a2->{json}, $a1->{json}, 'the same key again: the same answer');
is($t->psql("SELECT points FROM users WHERE id = $V"), 700, 'granted once');
is(grant($V, { amount => 800, reason => 'event' },
    headers => { 'Idempotency-Key' => $key })->{status}, 422,
    'the key with another body: 422');

# --- 50 revokes at once -----------------------------------------------------

grant($V, { amount => 1300, reason => 'top up' });   # 2,000
my @res = $t->concurrent([ map { [ 'POST', "/api/v1/admin/users/$V/points",
    { amount => -100, reason => "r$_" }, $tok{ADM} ] } 1 .. 50 ]);
my %by;
$by{ $_->{status} . ($_->{json}{code} ? " $_->{json}{code}" : '') }++ for @res;
is_deeply(\%by, { 200 => 20, '409 INSUFFICIENT_POINTS' => 30 },
    '50 revokes of 100 from 2,000: exactly 20 pass');
is($t->psql("SELECT points FROM users WHERE id = $V"), 0, 'V has 0');
is($t->psql("SELECT count(*) || ' ' || min(points_after) FROM points_ledger"
    . " WHERE user_id = $V AND kind = 'REVOKE'"), '20 0',
    '20 REVOKE rows, the last at 0');

# --- a withdrawn user -------------------------------------------------------

$t->psql("UPDATE users SET status = 'WITHDRAWN', withdrawn_at = now(), name = ''"
    . " WHERE id = $V");
is_error(grant($V, { amount => 5, reason => 'x' }), 404, 'USER_NOT_FOUND',
    'a withdrawn user gets no points');
eval { $t->psql("UPDATE users SET points = 5 WHERE id = $V") };
like($@, qr/USER_NOT_FOUND/, 'a direct write is refused by the trigger');
is($t->psql("SELECT points FROM users WHERE id = $V"), 0, 'still 0');

$t->check_consistency;

$t->done;
