#!/usr/bin/perl
# The first-come restock queue (issue 12 section 4): buyers wait in line
# for a SOLD_OUT variant; stock that comes back is held for the line in
# arrival order, in the transaction that brought it back:
#
#   - 5 buyers waiting (1 unit each), a restock of 3: the first 3 by
#     arrival are HELD, the other two WAITING at positions 1 and 2; the
#     variant stays SOLD_OUT and an outsider's order is 409 OUT_OF_STOCK;
#   - a holder's order takes its held unit (the entry ORDERED);
#   - a hold past commerce_waitlist_hold (its start moved back: the test's
#     clock) EXPIRES by the job and passes to the next in line;
#   - leaving a held entry passes it on at once; with nobody left in line
#     the unit goes back on sale;
#   - a partial hold: the first in line wants 3, 2 come back: it holds 2,
#     the next waits;
#   - stock returned by an expired unpaid order feeds the line too, and a
#     seller's restock (PATCH of the variant) too;
#   - 20 concurrent joins make one line 1..20; a restock of 10 while 20
#     outsiders order: all 20 refused, exactly the first 10 hold;
#   - a second instance with commerce_waitlist_hold 1s lets every hold
#     run out and pass on until nobody waits;
#   - every hold is a waitlist.held event, delivered to the buyer through
#     the notify sink (Alimtalk, t/notifysim);
#   - joining a variant in stock is 409 VARIANT_IN_STOCK, twice 409
#     WAITLIST_DUPLICATE; bad input 400 and nothing changed; another
#     buyer's entry 404; Idempotency-Key on the POST;
#   - the stock ledger holds every move (WAITLIST_HOLD, WAITLIST_RELEASE)
#     and the products their variants' sums.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Encode qw(encode_utf8);
use CommerceTest;
use NotifySim;

binmode(Test::More->builder->$_, ':utf8') for qw(output failure_output todo_output);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
# product 10 (its default variant is 10): sold out; 11 in stock; 12 and 13
# for the partial hold and the returned stock
$t->psql(q{UPDATE products p SET name = v.name, price = 1000, stock = v.stock
             FROM (VALUES (10, 'Mug', 0), (11, 'Cup', 5), (12, 'Bowl', 0), (13, 'Pot', 1))
                  AS v(id, name, stock)
            WHERE p.id = v.id});

my $ns = NotifySim->start(log => $t->dir . '/notifysim.log');
my $sfile = $t->write_file('kakao.secret', "kakao-secret-1\n");
chmod 0600, $sfile;
$ns->control(alimtalk => { secret => 'kakao-secret-1' });
my $ka = $ns->port('alimtalk');
my $tpl = $t->root . '/conf/notify-templates.json';

# the configuration, with its commerce_waitlist_hold
sub conf {
    my ($hold) = @_;
    return encode_utf8($t->default_config(
        main_extra => $t->account_main,
        http_extra => $t->account_keys . <<"EOF"));
commerce_zone 1m;
commerce_waitlist_hold $hold;
commerce_waitlist_interval 200ms;
commerce_order_expiry_interval 200ms;
upstream kakao { server 127.0.0.1:$ka; }
commerce_notify_channel kakao alimtalk upstream=kakao app_key=AppKey1
    secret_file=$sfile sender_key=sk-0123abcd timeout=1s;
commerce_event_sink buyer notify channel=kakao templates=$tpl
    events=waitlist.held retry_base=100ms retry_cap=400ms interval=100ms;
EOF
}
$t->write_config(conf('1h'));
$t->start_nginx;

my $TS = qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/;
my $ID = sub { CommerceTest::_is_num($_[0]) && $_[0] > 0 };

sub signup {
    my ($email, $name, $phone) = @_;
    my $r = $t->post('/api/v1/auth/signup', { email => $email,
        password => 'correct horse battery', name => $name, phone => $phone });
    die "signup: $r->{status} $r->{body}" unless $r->{status} == 201;
    $t->psql("UPDATE users SET balance = 100000 WHERE id = $r->{json}{id}");
    return $r->{json}{id};
}
my @names = ('김일', '김이', '김삼', '김사', '김오', '박외');
my @U = map { signup("buyer$_\@example.com", $names[$_ - 1],
                     sprintf('010-5555-%04d', $_)) } 1 .. 6;
my ($A, $B, $C, $D, $E, $F) = @U;

sub join_line {
    my ($user, $product, $variant, $q, %o) = @_;
    return $t->post("/api/v1/products/$product/variants/$variant/waitlist",
        { quantity => $q }, user => $user, %o);
}
sub mine { $t->get('/api/v1/users/me/waitlist', user => $_[0]) }
sub entry {
    my ($user, $id) = @_;
    my ($e) = grep { $_->{id} == $id } @{ mine($user)->{json}{items} };
    return $e;
}
# "status[/position|/held]" of an entry, from its owner's list
sub state_of {
    my ($user, $id) = @_;
    my $e = entry($user, $id) or return 'none';
    return $e->{status} . ($e->{status} eq 'WAITING' ? "/$e->{position}"
        : $e->{status} eq 'HELD' ? "/$e->{held}" : '');
}
sub stock { 0 + $t->psql("SELECT stock FROM product_variants WHERE id = $_[0]") }
sub ledger {
    my ($variant, $after) = @_;
    return scalar $t->psql("SELECT string_agg(reason || ':' || delta, ',' ORDER BY id)"
        . " FROM stock_movements WHERE variant_id = $variant AND id > $after");
}
sub last_move { 0 + $t->psql('SELECT coalesce(max(id), 0) FROM stock_movements') }
sub order {
    my ($user, $product, $q, $method) = @_;
    return $t->post('/api/v1/orders', { items => [ { productId => $product,
        quantity => $q } ], ($method ? (payment => { method => $method }) : ()) },
        user => $user);
}

# --- refusals: nothing changes ---------------------------------------------

my $before = $t->db_state;
is_error(join_line($A, 11, 11, 1), 409, 'VARIANT_IN_STOCK',
    'joining a variant in stock: 409 VARIANT_IN_STOCK');
is_error(join_line($A, 10, 11, 1), 404, 'VARIANT_NOT_FOUND',
    'a variant of another product: 404 VARIANT_NOT_FOUND');
is_error(join_line($A, 999999, 10, 1), 404, 'PRODUCT_NOT_FOUND',
    'an unknown product: 404 PRODUCT_NOT_FOUND');
for my $case ([ { quantity => 0 }, 'quantity 0' ],
              [ { quantity => 1000 }, 'quantity 1000' ],
              [ { quantity => '1' }, 'quantity a string' ],
              [ { quantity => 1.5 }, 'quantity 1.5' ],
              [ {}, 'no quantity' ],
              [ { quantity => 1, extra => 1 }, 'an unknown field' ],
              [ '{"quantity":1', 'malformed JSON' ]) {
    is_error($t->post('/api/v1/products/10/variants/10/waitlist', $case->[0],
        user => $A), 400, 'INVALID_REQUEST', "$case->[1]: 400");
}
is_error($t->post('/api/v1/products/10/variants/0/waitlist', { quantity => 1 },
    user => $A), 400, 'INVALID_REQUEST', 'a bad variant id: 400');
is($t->post('/api/v1/products/10/variants/10/waitlist', { quantity => 1 })->{status},
    401, 'no token: 401');
is_deeply($t->db_state, $before, '... nothing changed');

# --- five buyers in line ---------------------------------------------------

my $key = 'wait-key-0001';
my $r = join_line($A, 10, 10, 1, headers => { 'Idempotency-Key' => $key });
is_response($r, 201, { id => $ID, productId => 10, variantId => 10, name => 'Mug',
    optionValues => [], quantity => 1, status => 'WAITING', position => 1, held => 0,
    createdAt => $TS }, 'A joins: 201, WAITING at position 1');
my %e = ($A => $r->{json}{id});
my $again = join_line($A, 10, 10, 1, headers => { 'Idempotency-Key' => $key });
is($again->{status}, 201, 'the same Idempotency-Key again: 201');
is($again->{body}, $r->{body}, '... the same answer');
is(join_line($A, 10, 10, 2, headers => { 'Idempotency-Key' => $key })->{status}, 422,
    '... with another body: 422');
is($t->psql("SELECT count(*) FROM waitlist_entries WHERE user_id = $A"), 1,
    '... one entry');
is_error(join_line($A, 10, 10, 1), 409, 'WAITLIST_DUPLICATE',
    'A again (another key): 409 WAITLIST_DUPLICATE');
for my $u ($B, $C, $D, $E) {
    $r = join_line($u, 10, 10, 1);
    is($r->{status}, 201, "user $u joins") or diag($r->{body});
    $e{$u} = $r->{json}{id};
}
is(join(' ', map { state_of($_, $e{$_}) } $A, $B, $C, $D, $E),
    'WAITING/1 WAITING/2 WAITING/3 WAITING/4 WAITING/5',
    'positions 1..5 in arrival order');

# --- a restock of 3: the first three hold, two wait ------------------------

my $mark = last_move();
$t->psql('UPDATE product_variants SET stock = stock + 3 WHERE id = 10');
is(join(' ', map { state_of($_, $e{$_}) } $A, $B, $C, $D, $E),
    'HELD/1 HELD/1 HELD/1 WAITING/1 WAITING/2',
    'restock of 3: A, B, C hold 1 each; D and E wait at positions 1 and 2');
my $held = entry($A, $e{$A});
like($held->{heldUntil}, $TS, '... a hold shows its deadline');
is($held->{heldUntil}, scalar $t->psql("SELECT cm__ts(held_at + interval '1 hour')"
    . " FROM waitlist_entries WHERE id = $e{$A}"), '... the hold\'s start + commerce_waitlist_hold (1h)');
is(stock(10), 0, '... the variant keeps no stock on sale');
is(ledger(10, $mark), 'OPERATOR:3,WAITLIST_HOLD:-3', '... the ledger: +3, then -3 held');
$r = $t->get('/api/v1/products/10', user => $F);
is($r->{json}{status}, 'SOLD_OUT', '... the product shows SOLD_OUT');
is_error(order($F, 10, 1), 409, 'OUT_OF_STOCK',
    'an outsider cannot buy held stock: 409 OUT_OF_STOCK');
is_error(order($D, 10, 1), 409, 'OUT_OF_STOCK', '... nor can D, still waiting');

# --- the holder orders ------------------------------------------------------

$mark = last_move();
$r = order($A, 10, 1, 'BALANCE');
is($r->{status}, 201, 'A orders the held unit: 201') or diag($r->{body});
is($r->{json}{status}, 'PAID', '... PAID');
is(state_of($A, $e{$A}), 'ORDERED', '... A\'s entry is ORDERED');
is(ledger(10, $mark), 'WAITLIST_RELEASE:1,ORDER:-1', '... the hold went to the order');
is(join(' ', map { state_of($_, $e{$_}) } $B, $C, $D, $E),
    'HELD/1 HELD/1 WAITING/1 WAITING/2', '... the others unchanged');
is_error($t->req('DELETE', "/api/v1/users/me/waitlist/$e{$A}", user => $A), 409,
    'WAITLIST_ENTRY_CLOSED', 'leaving an ORDERED entry: 409 WAITLIST_ENTRY_CLOSED');

# --- a hold runs out: it passes to the next in line -------------------------

# the test's clock: B's hold started two hours ago
$t->psql("UPDATE waitlist_entries SET held_at = now() - interval '2 hours'"
    . " WHERE id = $e{$B}");
ok(wait_until(sub { state_of($B, $e{$B}) eq 'EXPIRED' }, timeout => 15),
    'B\'s hold is past commerce_waitlist_hold: the job EXPIRES it');
is(join(' ', map { state_of($_, $e{$_}) } $C, $D, $E), 'HELD/1 HELD/1 WAITING/1',
    '... D, next in line, holds its unit; E waits at position 1');
is(stock(10), 0, '... nothing on sale');

# --- leaving ----------------------------------------------------------------

is_error($t->req('DELETE', "/api/v1/users/me/waitlist/$e{$C}", user => $F), 404,
    'WAITLIST_ENTRY_NOT_FOUND', 'another buyer\'s entry: 404 WAITLIST_ENTRY_NOT_FOUND');
is_error($t->req('DELETE', '/api/v1/users/me/waitlist/999999', user => $C), 404,
    'WAITLIST_ENTRY_NOT_FOUND', 'an unknown entry: 404');
is(state_of($C, $e{$C}), 'HELD/1', '... C\'s entry untouched');
$r = $t->req('DELETE', "/api/v1/users/me/waitlist/$e{$C}", user => $C);
is($r->{status}, 204, 'C leaves its held entry: 204');
is(join(' ', map { state_of($_, $e{$_}) } $C, $D, $E), 'LEFT HELD/1 HELD/1',
    '... its unit passes to E at once');
is_error($t->req('DELETE', "/api/v1/users/me/waitlist/$e{$C}", user => $C), 409,
    'WAITLIST_ENTRY_CLOSED', 'leaving again: 409');
$mark = last_move();
is($t->req('DELETE', "/api/v1/users/me/waitlist/$e{$D}", user => $D)->{status}, 204,
    'D leaves too, nobody waits');
is(stock(10), 1, '... its unit is back on sale');
is(ledger(10, $mark), 'WAITLIST_RELEASE:1', '... one release in the ledger');
$r = order($F, 10, 1);
is($r->{status}, 201, '... and anyone may buy it') or diag($r->{body});

# --- a partial hold ---------------------------------------------------------

my $x = join_line($A, 12, 12, 3)->{json}{id};
my $y = join_line($B, 12, 12, 1)->{json}{id};
$t->psql('UPDATE product_variants SET stock = stock + 2 WHERE id = 12');
is(state_of($A, $x) . ' ' . state_of($B, $y), 'HELD/2 WAITING/1',
    '3 wanted, 2 back: the first holds 2 (partial), the next waits');
is(stock(12), 0, '... nothing on sale');
$r = order($A, 12, 3);
is_error($r, 409, 'OUT_OF_STOCK', 'the holder orders 3 of 2 held: 409 OUT_OF_STOCK');
is(state_of($A, $x), 'HELD/2', '... nothing changed, the hold stays');
$r = order($A, 12, 1);
is($r->{status}, 201, 'the holder orders 1 of its 2') or diag($r->{body});
is(state_of($A, $x) . ' ' . state_of($B, $y), 'ORDERED HELD/1',
    '... the other held unit passes to the next in line');

# --- stock returned by an expired order feeds the line ---------------------

$r = order($F, 13, 1);
is($r->{status}, 201, 'an unpaid order takes product 13\'s last unit') or diag($r->{body});
my $o13 = $r->{json}{id};
my $z = join_line($C, 13, 13, 1)->{json}{id};
is(state_of($C, $z), 'WAITING/1', 'C waits for it');
$t->psql("UPDATE orders SET created_at = now() - interval '2 hours' WHERE id = $o13");
ok(wait_until(sub { state_of($C, $z) eq 'HELD/1' }, timeout => 15),
    'the order expires: its unit is held for C');
is($t->psql("SELECT status FROM orders WHERE id = $o13"), 'CANCELLED', '... the order cancelled');
is(stock(13), 0, '... nothing on sale');

# --- the notifications ------------------------------------------------------

my @holds = ([ $A, 'Mug', 1 ], [ $B, 'Mug', 1 ], [ $C, 'Mug', 1 ], [ $D, 'Mug', 1 ],
             [ $E, 'Mug', 1 ], [ $A, 'Bowl', 2 ], [ $B, 'Bowl', 1 ], [ $C, 'Pot', 1 ]);
is($t->psql(q{SELECT count(*) FROM outbox WHERE type = 'waitlist.held'}), scalar @holds,
    'one waitlist.held event per hold');
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM outbox_delivery
        WHERE sink = 'buyer' AND state = 'DELIVERED'}) == @holds }, timeout => 20),
    '... each delivered by the notify sink');
my %got;
for my $m (@{ $ns->received('alimtalk') }) {
    push @{ $got{ $m->{recipientNo} } }, join ' ', $m->{templateCode},
        map { "$_=$m->{templateParameter}{$_}" } sort keys %{ $m->{templateParameter} };
}
my %want;
for my $h (@holds) {
    my ($u, $p, $q) = @$h;
    my $i = (grep { $U[$_] == $u } 0 .. $#U)[0];
    push @{ $want{ sprintf('0105555%04d', $i + 1) } },
        "COMMERCE_WAITLIST_HELD_01 name=$names[$i] productName=$p quantity=$q";
}
is_deeply(\%got, \%want, '... an Alimtalk message to each holder: its product and units');

# --- the seller's restock; leaving a WAITING entry --------------------------

my $CT = 'v1.1.AAAAAAAAAAAAAAAA.' . ('A' x 22);
$t->psql(<<"SQL");
UPDATE users SET role = 'SELLER' WHERE id = 901;
INSERT INTO stores (id, owner_id, name, bank_code, account_number_ct, account_holder_ct,
                    account_last4)
VALUES (901, 901, 'X', '004', '$CT', '$CT', '1234');
UPDATE products SET store_id = 901, name = 'Lid', stock = 0 WHERE id = 15;
SQL
my @w15 = map { join_line($_, 15, 15, 1)->{json}{id} } 301 .. 303;
is($t->req('DELETE', "/api/v1/users/me/waitlist/$w15[0]", user => 301)->{status}, 204,
    'the first of three leaves while WAITING: 204');
is(join(' ', map { state_of(301 + $_, $w15[$_]) } 0 .. 2), 'LEFT WAITING/1 WAITING/2',
    '... the others move up');
$mark = last_move();
$r = $t->req('PATCH', '/api/v1/seller/products/15/variants/15',
    token => $t->token(901, role => 'SELLER'),
    body => { stockDelta => 1, reason => 'restock' });
is($r->{status}, 200, 'the seller restocks 1: 200') or diag($r->{body});
is($r->{json}{variants}[0]{stock}, 0, '... its answer shows the unit held, not on sale');
is(join(' ', map { state_of(301 + $_, $w15[$_]) } 1 .. 2), 'HELD/1 WAITING/1',
    '... the next in line holds it');
is(ledger(15, $mark), 'SELLER_ADJUST:1,WAITLIST_HOLD:-1',
    '... the ledger: the seller\'s +1, the hold\'s -1');

# --- concurrency: 20 joins at once; a restock among 20 outsiders' orders ----

$t->psql(q{UPDATE products SET name = 'Jar', stock = 0 WHERE id = 14});
my @res = $t->concurrent([ map { { method => 'POST',
    path => '/api/v1/products/14/variants/14/waitlist',
    body => { quantity => 1 }, user => $_ } } 101 .. 120 ], timeout => 60);
is_deeply(tally(@res), { 201 => 20 }, '20 concurrent joins: 20 entries');
is($t->psql(q{SELECT string_agg(n::text, ',' ORDER BY n) FROM (SELECT row_number()
    OVER (ORDER BY id) AS n FROM waitlist_entries WHERE variant_id = 14) x}),
    join(',', 1 .. 20), '... one line, positions 1..20');
my $bg = $t->psql_bg('UPDATE product_variants SET stock = stock + 10 WHERE id = 14;');
@res = $t->concurrent([ map { { method => 'POST', path => '/api/v1/orders',
    body => { items => [ { productId => 14, quantity => 1 } ] }, user => $_ } }
    201 .. 220 ], timeout => 60);
$t->psql_wait($bg);
is_deeply(tally(@res), { '409 OUT_OF_STOCK' => 20 },
    'a restock of 10 while 20 outsiders order: every outsider 409 OUT_OF_STOCK');
is($t->psql(q{SELECT string_agg(status, ',' ORDER BY id) FROM waitlist_entries
    WHERE variant_id = 14}), join(',', ('HELD') x 10, ('WAITING') x 10),
    '... exactly the first 10 by arrival hold, the other 10 wait');
is(stock(14), 0, '... nothing on sale');

# --- a short commerce_waitlist_hold: a second instance, 1s -----------------

$t->write_config(conf('1s'), name => 'b');
$t->start_nginx(name => 'b');
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM waitlist_entries
        WHERE status = 'HELD'}) == 0 }, timeout => 30),
    'instance b (hold 1s): every hold runs out and passes on until nobody is left');
is($t->psql(q{SELECT string_agg(status, ',' ORDER BY id) FROM waitlist_entries
    WHERE variant_id = 14}), join(',', ('EXPIRED') x 20),
    '... the 10 holds of product 14 passed to the 10 waiting, who let them run out too');
is(stock(14), 10, '... and the 10 units are back on sale');
is($t->psql(q{SELECT count(*) FROM outbox WHERE type = 'waitlist.held'
    AND (payload ->> 'variantId')::bigint = 14}), 20, '... 20 holds, 20 events');

# --- the books --------------------------------------------------------------

is($t->psql(q{SELECT count(*) FROM waitlist_entries w
    WHERE (w.status = 'HELD') <> (w.held > 0)}), 0, 'held units only on HELD entries');
$t->check_stock;
$t->check_consistency;

done_testing;
