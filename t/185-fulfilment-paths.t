#!/usr/bin/perl
# Issue 13 end to end: a seeded random run of 200 orders through every path
# on one stack (Postgres, nginx, the PG simulator, the carrier simulator,
# the payout simulator): paid by balance, card, points + card and points +
# balance, with a coupon now and then; then each cancelled whole before
# shipping, a seller part of it cancelled, shipped and delivered by carrier
# pushes and confirmed by the buyer, confirmed by the job 8 days after
# delivery, returned in part (the pickup parcel back through the carrier,
# some units restocked) and then confirmed, or left paid.  The confirmed
# parts are settled (a week run from the admin route as of now, the parts'
# times moved back two weeks: the test clock); then confirmed parts are
# returned after their settlement and the next week deducts the refunds.
# After all of it the reconciliation query balances for every store,
# every part's refunded amount is its refunds and never more than it paid,
# the card refunds are what the PG simulator cancelled, the payouts are
# what the payout simulator sent, stock and ledgers are consistent.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use CarrierSim;
use PayoutSim;
use MixPay;
use JSON::PP;

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

use constant ORDERS => 200;
srand(185);

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
my $sim = PgSim->start(seed => 185, failRate => 0, latencyMs => [0, 5],
    decisionMs => [20, 60], log => $t->dir . '/pgsim.log');
my $cs = CarrierSim->start(key => 'key-185', log => $t->dir . '/carriersim.log');
my $ps = PayoutSim->start(log => $t->dir . '/payoutsim.log');
my ($pgport, $cport, $pport) = ($sim->port, $cs->port, $ps->port);

$t->write_config($t->default_config(
    main_extra => $t->account_main,
    http_extra => $t->account_keys . <<"EOF"));
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$pgport; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=2s connect_timeout=500ms;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_reconcile_interval 300ms;
commerce_reconcile_age 1s;
commerce_refund interval=200ms attempts=5 backoff=1s lease=10s;
upstream carrier { server 127.0.0.1:$cport; keepalive 4; }
commerce_gateway carrier_sim upstream=carrier timeout=2s connect_timeout=500ms;
commerce_shipping gateway=carrier_sim key=key-185
                  callback_url=http://127.0.0.1:%%PORT%%/api/v1/shipping/callback
                  poll_after=1h interval=200ms lease=2s confirm_after=8d points=1%;
upstream payout_sim { server 127.0.0.1:$pport; keepalive 4; }
commerce_settlement upstream=payout_sim timeout=1s connect_timeout=500ms
    callback_url=http://127.0.0.1:%%PORT%%/api/v1/settlements/payouts/callback
    hold=7d fee=5% minimum=10000 interval=200ms retries=3 check=2s weekly=off;
EOF
$t->start_nginx;
MixPay::init($t, $sim);

# --- sellers, stores (accounts sealed by the module), products ----------------

my ($ADMIN) = (2);
$t->psql("UPDATE users SET role = 'ADMIN' WHERE id = $ADMIN;
          UPDATE users SET role = 'SELLER' WHERE id IN (901, 902);
          UPDATE users SET balance = 10000000 WHERE id BETWEEN 1 AND 50");
my %seller = (X => { token => $t->token(901, role => 'SELLER') },
              Y => { token => $t->token(902, role => 'SELLER') });
my $admin = $t->token($ADMIN, role => 'ADMIN');
my %store;
for my $s (qw(X Y)) {
    my $r = $t->post('/api/v1/seller/store', { name => "Store $s", bankCode => '004',
        accountNumber => "110-123-45678$s" =~ tr/XY/12/r, accountHolder => "판매자 $s" },
        %{ $seller{$s} });
    is($r->{status}, 201, "store $s opened") or diag $r->{raw};
    $store{$s} = 0 + $r->{json}{id};
}
my %of = reverse %store;
# 11, 12 of X; 13, 14 of Y; 16 the platform's
my %price = (11 => 10000, 12 => 2500, 13 => 8000, 14 => 2000, 16 => 3000);
$t->psql(<<"SQL");
UPDATE products p SET price = v.price, stock = 1000, store_id = v.store
  FROM (VALUES (11, 10000, $store{X}), (12, 2500, $store{X}), (13, 8000, $store{Y}),
               (14, 2000, $store{Y}), (16, 3000, NULL::bigint)) AS v(id, price, store)
 WHERE p.id = v.id;
SQL
my %variant = map { $_ => 0 + $t->psql("SELECT id FROM product_variants WHERE product_id = $_") }
    keys %price;
my %addr = (recipient => '홍길동', phone => '010-1234-5678', zipCode => '06236',
    address1 => '서울 강남구 테헤란로 152');
MixPay::grant($_, 20000) for 1 .. 50;
my $camp = $t->create_coupon(discountType => 'FIXED', discountValue => 1000,
    totalQuantity => 1000, perUserLimit => 100, minOrderAmount => 0);

# --- 200 orders ---------------------------------------------------------------

my @orders;    # { id, user, total, parts => { X|Y|P => part id }, items, path }
my @paths = ((('confirm') x 9), (('auto') x 3), (('return') x 3), (('cancel') x 2),
    (('cancel_part') x 2), 'keep');
my %sent = (BALANCE => 0, CARD => 0, 'POINTS+CARD' => 0, 'POINTS+BALANCE' => 0);
for my $i (1 .. ORDERS) {
    my $user = 1 + $i % 50;
    my @pids = grep { rand() < 0.5 } (11, 12, 13, 14, 16);
    @pids = ((11, 13)[$i % 2]) unless @pids;
    my @items = map { { productId => $_, quantity => 1 + int(rand(3)) } } @pids;
    my $total = 0;
    $total += $price{ $_->{productId} } * $_->{quantity} for @items;
    my %body = (items => \@items, shippingAddress => \%addr);
    if (rand() < 0.2) {
        my $uc = $t->issue_coupon($camp, $user)->{json}{id};
        $body{couponId} = $uc;
        $total -= 1000;
    }
    my $kind = (qw(BALANCE BALANCE CARD POINTS+CARD POINTS+BALANCE))[int(rand(5))];
    $sent{$kind}++;
    my $pts = 1 + int(rand(1000));
    $body{payment} = $kind eq 'BALANCE' ? { method => 'BALANCE' }
        : $kind eq 'CARD' ? MixPay::card($total)
        : $kind eq 'POINTS+CARD' ? [ MixPay::pts($pts), MixPay::card($total - $pts) ]
        : [ MixPay::pts($pts), MixPay::bal($total - $pts) ];
    my $r = $t->post('/api/v1/orders', \%body, user => $user);
    die "order $i ($kind): $r->{status} $r->{body}" unless $r->{status} =~ /^20[12]$/;
    push @orders, { id => 0 + $r->{json}{id}, user => $user, kind => $kind,
        path => $paths[int(rand(@paths))], items => \@items };
}
my $paid = 0;
for my $o (@orders) {
    my $doc = $t->wait_order($o->{id}, user => $o->{user}, timeout => 30,
        until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
    $paid++ if $doc->{status} eq 'PAID';
    $o->{parts} = { map { (defined $_->{storeId} ? $of{ $_->{storeId} } : 'P') => 0 + $_->{id} }
        @{ $doc->{parts} // [] } };
}
is($paid, ORDERS, ORDERS . ' orders paid (' . join(', ', map { "$_ $sent{$_}" } sort keys %sent)
    . ')');
$t->check_consistency('after paying');

sub seller_parts { my ($o) = @_; map { [ $_, $o->{parts}{$_} ] } grep { $_ ne 'P' } sort keys %{ $o->{parts} } }
sub part_status { $t->psql("SELECT status FROM order_parts WHERE id = $_[0]") }

# --- cancellations before shipping -------------------------------------------

my ($cancels, $part_cancels) = (0, 0);    # orders CANCELLED, part cancels
for my $o (@orders) {
    if ($o->{path} eq 'cancel') {
        my $r = $t->post("/api/v1/orders/$o->{id}/cancel", '', user => $o->{user},
            headers => { 'Idempotency-Key' => "cancel-$o->{id}" });
        is($r->{status}, 200, "order $o->{id} cancelled whole") or diag $r->{body};
        # a retry under the same key: the same answer, nothing more refunded
        my $again = $t->post("/api/v1/orders/$o->{id}/cancel", '', user => $o->{user},
            headers => { 'Idempotency-Key' => "cancel-$o->{id}" });
        is($again->{status}, 200, '... replayed');
        $cancels++;
    } elsif ($o->{path} eq 'cancel_part') {
        my ($first) = seller_parts($o);
        next unless $first;
        my $r = $t->post("/api/v1/orders/$o->{id}/cancel", { partIds => [ $first->[1] ] },
            user => $o->{user});
        is($r->{status}, 200, "order $o->{id}: its part $first->[1] cancelled") or diag $r->{body};
        $o->{cancelled} = $first->[0];
        $part_cancels++;
        # its only part: the order is cancelled with it
        $cancels++ if keys %{ $o->{parts} } == 1;
    }
}
ok(wait_until(sub { $t->psql("SELECT count(*) FROM refunds WHERE status = 'PENDING'") eq '0' },
    timeout => 60), "the gateway refunds of the cancels done ($part_cancels of them part cancels)");

# --- shipping: prepare, ship, the carrier's pushes to level 6 -----------------

my $num = 400000000000;
my @shipped;
for my $o (@orders) {
    next unless $o->{path} =~ /^(confirm|auto|return|cancel_part)$/;
    for my $sp (seller_parts($o)) {
        my ($s, $part) = @$sp;
        next if ($o->{cancelled} // '') eq $s;
        my $r = $t->post("/api/v1/seller/orders/$part/prepare", {}, %{ $seller{$s} });
        is($r->{status}, 200, "part $part prepared") or diag $r->{body};
        $num++;
        $r = $t->post("/api/v1/seller/orders/$part/shipment",
            { carrier => 'CJ', trackingNumber => "$num" }, %{ $seller{$s} });
        is($r->{status}, 201, "part $part shipped") or diag $r->{body};
        push @shipped, [ $o, $s, $part, "$num" ];
    }
}
my $nship = @shipped;
ok(wait_until(sub { $t->psql("SELECT count(*) FROM shipments WHERE registered_at IS NOT NULL"
    . " AND return_id IS NULL") == $nship }, timeout => 60),
    "$nship parcels registered for push");
$cs->advance('CJ', $_->[3], 3) for @shipped;
$cs->advance('CJ', $_->[3], 6) for @shipped;
ok(wait_until(sub { $t->psql("SELECT count(*) FROM order_parts WHERE status = 'DELIVERED'")
    == $nship }, timeout => 60), "$nship parts delivered by the carrier's pushes");

# --- returns of delivered parts -------------------------------------------------

sub return_one {
    my ($o, $s, $part, $tag) = @_;
    my ($item) = grep { ($of{ $t->psql("SELECT store_id FROM products WHERE id = $_->{productId}") }
        // '') eq $s } @{ $o->{items} };
    my $r = $t->post("/api/v1/orders/$o->{id}/parts/$part/returns", { reason => "$tag 반품",
        items => [ { variantId => $variant{ $item->{productId} }, quantity => 1 } ] },
        user => $o->{user});
    is($r->{status}, 201, "order $o->{id}: a return of 1 unit of part $part ($tag)")
        or diag $r->{body};
    my $ret = $r->{json}{id};
    $num++;
    $r = $t->post("/api/v1/seller/returns/$ret/approve", { carrier => 'HANJIN',
        trackingNumber => "$num" }, %{ $seller{$s} });
    is($r->{status}, 200, "... approved with the pickup parcel") or diag $r->{body};
    return [ $ret, "$num", $s, $item ];
}

sub parcels_back {
    my (@rets) = @_;
    my $n = @rets;
    my $ids = join ',', map { $_->[0] } @rets;
    ok(wait_until(sub { $t->psql("SELECT count(*) FROM shipments WHERE return_id IN ($ids)"
        . " AND registered_at IS NOT NULL") == $n }, timeout => 60),
        "$n pickup parcels registered");
    $cs->advance('HANJIN', $_->[1], 6) for @rets;
    ok(wait_until(sub { $t->psql("SELECT count(*) FROM order_returns WHERE id IN ($ids)"
        . " AND status IN ('RECEIVED', 'REFUNDED')") == $n }, timeout => 60),
        "$n returns back at their sellers");
    for my $ret (@rets) {
        # the seller restocks the unit, or finds it damaged
        my $units = int(rand(2));
        my $r = $t->post("/api/v1/seller/returns/$ret->[0]/restock", { items => [ {
            variantId => $variant{ $ret->[3]{productId} }, quantity => $units } ] },
            %{ $seller{ $ret->[2] } });
        is($r->{status}, 200, "return $ret->[0]: $units unit(s) restocked") or diag $r->{body};
    }
    ok(wait_until(sub { $t->psql("SELECT count(*) FROM refunds WHERE status = 'PENDING'") eq '0'
        }, timeout => 60), '... their refunds done');
}

my @rets = map { return_one(@$_[0 .. 2], 'before confirmation') }
    grep { $_->[0]{path} eq 'return' } @shipped;
parcels_back(@rets) if @rets;

# --- confirmation: the buyer, or the job 8 days after delivery ------------------

for my $sh (@shipped) {
    my ($o, $s, $part) = @$sh;
    next if $o->{path} eq 'auto';
    my $r = $t->post("/api/v1/orders/$o->{id}/parts/$part/confirm", {}, user => $o->{user});
    is($r->{status}, 200, "part $part confirmed by its buyer") or diag $r->{body};
}
my @auto = map { $_->[2] } grep { $_->[0]{path} eq 'auto' } @shipped;
if (@auto) {
    $t->psql("UPDATE order_parts SET delivered_at = delivered_at - interval '8 days 1 minute'"
        . " WHERE id IN (" . join(',', @auto) . ")");
}
ok(wait_until(sub { $t->psql("SELECT count(*) FROM order_parts WHERE status = 'PURCHASE_CONFIRMED'")
    == $nship }, timeout => 60), "$nship parts confirmed (" . @auto . ' by the job)');
is($t->psql("SELECT count(*) FROM points_ledger WHERE kind = 'EARN'"), $nship,
    '... each earned its points once');

# --- settlement: the confirmed parts three weeks back, last week run ------------

# the test clock: the parts were confirmed 21 days ago; last week (as of 7
# days ago) settles them all, this week (as of now) deducts the refunds
# of the returns made after that settlement
$t->psql("UPDATE order_parts SET confirmed_at = confirmed_at - interval '21 days'"
    . " WHERE status = 'PURCHASE_CONFIRMED'");
sub seoul { $t->psql("SELECT to_char((now() - interval '$_[0]') AT TIME ZONE 'Asia/Seoul',"
    . " 'YYYY-MM-DD\"T\"HH24:MI:SS') || '+09:00'") }
my ($last_week, $this_week) = (seoul('7 days'), seoul('0 days'));
my $r = $t->post('/api/v1/admin/settlements/run', { asOf => $last_week }, token => $admin);
is($r->{status}, 200, "last week settled (as of $last_week)") or diag $r->{body};
is($t->psql("SELECT count(*) FROM order_parts x WHERE x.status = 'PURCHASE_CONFIRMED'"
    . " AND NOT EXISTS (SELECT 1 FROM settlement_lines l WHERE l.part_id = x.id)"), 0,
    '... every confirmed part settled');
ok(wait_until(sub { $t->psql("SELECT count(*) FROM payouts WHERE status <> 'SUCCEEDED'") eq '0'
    }, timeout => 60), '... its payouts succeeded');

# --- returns after settlement: deducted from the next week ----------------------

my @late = map { return_one(@$_[0 .. 2], 'after settlement') }
    grep { $_->[0]{path} eq 'confirm' } @shipped[0 .. 9];
parcels_back(@late) if @late;
# made during this week, before its Monday's run (the test clock)
$t->psql("UPDATE refunds SET created_at = cm__settlement_week(now()) - interval '1 hour',"
    . " done_at = cm__settlement_week(now()) - interval '1 hour' WHERE settled_in IS NULL");
$r = $t->post('/api/v1/admin/settlements/run', { asOf => $this_week }, token => $admin);
is($r->{status}, 200, "this week settled (as of $this_week)") or diag $r->{body};
is($t->psql("SELECT count(*) FROM refunds r WHERE r.settled_in IS NULL AND EXISTS"
    . " (SELECT 1 FROM settlement_lines l WHERE l.part_id = r.part_id)"), 0,
    '... the refunds of settled parts deducted');
ok(wait_until(sub { $t->psql("SELECT count(*) FROM payouts WHERE status <> 'SUCCEEDED'") eq '0'
    }, timeout => 60), '... its payouts (if any) succeeded');

# --- the books -----------------------------------------------------------------

my @bad = $t->psql("SELECT store_id FROM cm_settlement_reconcile() WHERE NOT balanced");
is_deeply(\@bad, [], 'the reconciliation balances for every store: payouts + fees'
    . ' + carry-overs + refunds = confirmed sales');
is($t->psql(q{SELECT count(*) FROM order_parts x
    WHERE x.refunded_amount <> (SELECT coalesce(sum(r.amount), 0) FROM refunds r
                                 WHERE r.part_id = x.id AND r.status <> 'FAILED')
       OR x.refunded_amount > x.payment_amount}), 0,
    "every part's refunded amount is its refunds, never more than it paid");
my $card_refunds = 0 + $t->psql("SELECT coalesce(sum(amount), 0) FROM refunds"
    . " WHERE method = 'CARD' AND status = 'DONE'");
my $cancelled = 0;
$cancelled += $_->{cancelledAmount} // 0 for @{ $sim->transactions };
is($cancelled, $card_refunds, "the PG simulator cancelled exactly the card refunds ($card_refunds)");
my $payouts = 0 + $t->psql("SELECT coalesce(sum(amount), 0) FROM payouts WHERE status = 'SUCCEEDED'");
my $sent_total = 0;
$sent_total += $_->{amount} for @{ $ps->ledger };
is($sent_total, $payouts, "the payout simulator sent exactly the payouts ($payouts)");
is($t->psql("SELECT count(*) FROM orders WHERE status = 'CANCELLED'"), $cancels,
    "$cancels orders cancelled (whole, or their only part)");
$t->check_consistency('after every path');

done_testing;
