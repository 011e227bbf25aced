#!/usr/bin/perl
# A payment gateway (PG) that answers with `Transfer-Encoding: chunked`, as
# Spring Boot gateways do: the simulator (t/pgsim, setting `chunked`) sends
# every API answer in chunks of 7 bytes, and the module decodes them
# (src/cm_chunked.c) instead of reading a Content-Length.
#
#   1. a card payment: create 202, callback, confirming status GET, PAID;
#      the transaction key and the status come out of chunked bodies;
#   2. the interface log holds the decoded bodies, not the chunk framing;
#   3. declines: the reason of a chunked 200 (status GET) and of a chunked
#      400 (the PG refuses the create) is the order's reason;
#   4. answers written in 8 pieces a few ms apart (cuts inside chunk
#      headers and CRLFs), a status body over 4 KB, 12 payments at once;
#   5. keep-alive: many chunked answers over few connections (the PG's
#      counters of connections and requests);
#   6. a malformed chunked answer (setting `chunkedBroken`: the second
#      chunk-size is "zz") is treated as a broken connection: to the create,
#      202 and the payment left PENDING (never re-sent; the reconciler
#      finds it by orderId); to the confirming GET, nothing changes until
#      the PG answers well again.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use JSON::PP;
use Time::HiRes qw(time sleep);

binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);

my $LIMIT = '한도초과입니다. 다른 카드를 선택해주세요.';
my $SHORT_ID = '주문 ID는 12자리 이상 문자열이어야 합니다.';
my $KEY_RE = qr/\A\d{8}:TR:[0-9a-f]{6}\z/;

my $OK_CARD = '1111-1111-1111-1111';        # SUCCESS
my $LIMIT_CARD = '2222-2222-2222-2222';     # FAILED, limit exceeded

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

# chunked from the start: every API answer of this PG is chunked
my $sim = PgSim->start(seed => 89, failRate => 0, latencyMs => [0, 5],
    decisionMs => [100, 200], chunked => 1, log => $t->dir . '/pgsim.log');

my $port = $sim->port;
$t->write_config($t->default_config(
    server_extra => 'location = /metrics { commerce_metrics; }',
    http_extra => <<"EOF"));
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$port; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms window=100 min_calls=100 failure_rate=50 open=2s probes=2 probe_deadline=3s keepalive=8;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_retries 3;
commerce_gateway_retry_base 50ms;
commerce_gateway_retry_cap 500ms;
commerce_gateway_retry_budget 20;
commerce_gateway_retry_budget_min 10;
commerce_reconcile_interval 500ms;
commerce_reconcile_age 1s;
commerce_reconcile_grace 3s;
commerce_payment_timeout 600s;
EOF
$t->start_nginx;

# ---------------------------------------------------------------------------
# helpers

sub card { { method => 'CARD', cardType => $_[1] // 'KB', cardNo => $_[0] } }
sub pg_order_id { sprintf '%06d', $_[0] }
sub stock { $t->psql("SELECT stock FROM products WHERE id = $_[0]") + 0 }
sub pg_txns { $sim->transactions(orderId => pg_order_id($_[0])) }

sub payment_row {
    return $t->psql_json("SELECT row_to_json(p) FROM payments p"
        . " WHERE id = $_[0]");
}

sub log_rows {
    return $t->psql_json("SELECT coalesce(json_agg(l ORDER BY id), '[]')"
        . " FROM payment_interface_request_log l WHERE payment_id = $_[0]")
        // [];
}

sub order_card {
    my ($user, $pid, $qty, $no) = @_;
    return $t->post('/api/v1/orders', { items => [ { productId => $pid,
        quantity => $qty } ], payment => card($no) }, user => $user);
}

sub wait_decided {
    my ($id, $user, %o) = @_;
    return $t->wait_order($id, user => $user, timeout => $o{timeout} // 10,
        until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
}

sub no_pending {
    return wait_until(sub {
        $t->psql("SELECT count(*) FROM payments WHERE status = 'PENDING'")
            == 0 }, timeout => 15);
}

sub decode_json_or_undef {
    my ($s) = @_;
    return undef unless defined $s;
    return eval { JSON::PP->new->utf8(0)->decode($s) };
}

# the simulator's own log lines for API answers
sub sim_lines {
    my ($re) = @_;
    return grep { $_ =~ $re } split /\n/, $sim->log_text;
}

# ---------------------------------------------------------------------------
# 0. The simulator really answers chunked

my $probe = $sim->request('GET', '/api/v1/payments?orderId=000000',
    user => 1);
is($probe->{status}, 404, 'the PG answers (404: no such order)');
is(lc($probe->{headers}{'transfer-encoding'} // ''), 'chunked',
    'with Transfer-Encoding: chunked');
ok(!exists $probe->{headers}{'content-length'}, 'and no Content-Length');
like($probe->{raw}, qr/\r\n\r\n7\r\n\{"meta"\r\n7\r\n/,
    'in chunks of 7 bytes');
is($probe->{json}{meta}{errorCode}, 'Not Found', 'which decode to its JSON');

my $m0 = $t->metrics;

# ---------------------------------------------------------------------------
# 1. A card payment through create, callback and status GET

my $s3 = stock(3);
my $r = order_card(11, 3, 2, $OK_CARD);
is($r->{status}, 202, 'card order: 202');
is($r->{json}{status}, 'PAYMENT_IN_PROGRESS', 'PAYMENT_IN_PROGRESS');
is($r->{json}{payment}{status}, 'PENDING', 'payment PENDING');
my $o1 = $r->{json}{id};
my $p1 = $r->{json}{payment}{id};

my $o = wait_decided($o1, 11);
is($o->{status}, 'PAID', 'after the callback and the status GET: PAID');
is($o->{payment}{status}, 'SUCCESS', 'payment SUCCESS');
is($o->{payment}{reason}, undef, 'no reason');
is(stock(3), $s3 - 2, 'stock kept');

my $txns = pg_txns($o1);
is(scalar @$txns, 1, 'the PG holds one transaction');
my $k1 = $txns->[0]{transactionKey};
like($k1, $KEY_RE, "its key $k1");
is(payment_row($p1)->{transaction_key}, $k1,
    'the key was read from the chunked create answer');
is($txns->[0]{callbacks}[0]{status}, 200, 'the callback was answered 200');
ok(scalar(sim_lines(qr{POST /api/v1/payments 200 .*key=\Q$k1\E chunked})),
    'the PG answered the create chunked');
ok(scalar(sim_lines(qr{GET /api/v1/payments/\Q$k1\E 200 .*SUCCESS chunked})),
    'and the status GET chunked');

# ---------------------------------------------------------------------------
# 2. The interface log holds the decoded bodies

my $rows = log_rows($p1);
my @ops = map { "$_->{direction} $_->{operation}" } @$rows;
is_deeply(\@ops, [ 'OUT CREATE', 'IN CALLBACK', 'OUT STATUS' ],
    'interface log: OUT CREATE, IN CALLBACK, OUT STATUS')
    or diag(explain(\@ops));
my ($create) = grep { $_->{operation} eq 'CREATE' } @$rows;
my ($status) = grep { $_->{operation} eq 'STATUS' } @$rows;
is($create->{http_status}, 200, 'create row: 200');
is($create->{error}, undef, 'create row: no error');
is($create->{response_body}, '{"meta":{"result":"SUCCESS","errorCode":null,'
    . '"message":null},"data":{"transactionKey":"' . $k1 . '",'
    . '"status":"PENDING","reason":null}}',
    'create row: exactly the decoded body');
is($status->{http_status}, 200, 'status row: 200');
unlike($status->{response_body} // '', qr/\r\n/,
    'status row: no chunk framing left');
my $sj = decode_json_or_undef($status->{response_body});
is($sj->{data}{transactionKey}, $k1, 'status row: JSON with the key');
is($sj->{data}{status}, 'SUCCESS', 'status row: SUCCESS');
is($sj->{data}{cardNo}, '****-****-****-1111', 'status row: cardNo masked');
ok($create->{latency_ms} >= 0 && $status->{latency_ms} >= 0,
    'latency recorded');

# ---------------------------------------------------------------------------
# 3. Declines: reasons out of chunked bodies

# a decision by callback, confirmed by a chunked 200
my $s5 = stock(5);
$r = order_card(12, 5, 3, $LIMIT_CARD);
is($r->{status}, 202, 'declined card: 202 first');
my $o2 = $r->{json}{id};
$o = wait_decided($o2, 12);
is($o->{status}, 'PAYMENT_FAILED', 'then PAYMENT_FAILED');
is($o->{payment}{status}, 'FAILED', 'payment FAILED');
is($o->{payment}{reason}, $LIMIT, "the reason of the chunked 200: '$LIMIT'");
is(stock(5), $s5, 'stock released');

# the PG refuses the create itself: a chunked 400
$sim->control(minOrderIdLength => 12);
my $c0 = $sim->counters;
my $s7 = stock(7);
$r = order_card(13, 7, 1, $OK_CARD);
is($r->{status}, 200, 'the PG answers 400: 200 at once');
is($r->{json}{status}, 'PAYMENT_FAILED', 'PAYMENT_FAILED');
is($r->{json}{payment}{reason}, $SHORT_ID,
    "the message of the chunked 400: '$SHORT_ID'");
is(stock(7), $s7, 'stock released');
my $c1 = $sim->counters;
is($c1->{create_400} - $c0->{create_400}, 1, 'the PG answered one 400');
is($c1->{create} - $c0->{create}, 1, 'never retried');
my ($bad) = grep { $_->{operation} eq 'CREATE' }
    @{ log_rows($r->{json}{payment}{id}) };
is($bad->{http_status}, 400, 'create row: 400');
is(decode_json_or_undef($bad->{response_body})->{meta}{message}, $SHORT_ID,
    'create row: the decoded 400 body');
$sim->control(minOrderIdLength => 6);

# ---------------------------------------------------------------------------
# 4. Answers in pieces, a body over 4 KB, many at once

my $LONG = 'approved ' x 700;                  # 6300 bytes, 900 chunks
$sim->control(chunkGapMs => 3, successReason => $LONG);
$r = order_card(14, 9, 1, $OK_CARD);
is($r->{status}, 202, 'answers in 8 pieces: 202');
my $p4 = $r->{json}{payment}{id};
$o = wait_decided($r->{json}{id}, 14);
is($o->{status}, 'PAID', 'PAID through a status answer of 6 KB in pieces');
($status) = grep { $_->{operation} eq 'STATUS' } @{ log_rows($p4) };
ok(length($status->{response_body} // '') > 6300,
    'status row: the whole body (' . length($status->{response_body} // '')
    . ' bytes)');
is(decode_json_or_undef($status->{response_body})->{data}{reason}, $LONG,
    'status row: the long reason decoded intact');
$sim->control(successReason => '정상 승인되었습니다.');

my @many = $t->concurrent([ map { [ 'POST', '/api/v1/orders',
    { items => [ { productId => 11, quantity => 1 } ],
      payment => card($OK_CARD) }, { user => 100 + $_ } ] } 1 .. 12 ]);
is(scalar(grep { $_->{status} == 202 } @many), 12,
    '12 card payments at once, answers in pieces: 202 each');
my @ids = grep { defined } map { $_->{json}{id} } @many;
ok(wait_until(sub { $t->psql("SELECT count(*) FROM orders WHERE status ="
    . " 'PAID' AND id IN (" . join(',', @ids, 0) . ')') == 12 },
    timeout => 15), 'all 12 PAID');
$sim->control(chunkGapMs => 0);

# ---------------------------------------------------------------------------
# 5. Keep-alive: the connections are reused across chunked answers

ok(no_pending(), 'nothing pending');
$c0 = $sim->counters;
for my $i (1 .. 6) {
    $r = order_card(20 + $i, 13, 1, $OK_CARD);
    $o = wait_decided($r->{json}{id}, 20 + $i);
    is($o->{status}, 'PAID', "payment $i of 6: PAID");
}
$c1 = $sim->counters;
my $requests = $c1->{requests} - $c0->{requests};
my $conns = $c1->{connections} - $c0->{connections};
ok($requests >= 12, "$requests API requests (a create and a GET each)");
ok($conns <= 4, "over $conns new connection(s) (2 workers, <= 4)");
ok($conns * 3 <= $requests, 'connections reused after chunked answers');
is($t->metric(undef, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'create', outcome => 'broken')
    - $t->metric($m0, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'create', outcome => 'broken'), 0, 'no broken answer so far');
is(scalar($t->grep_log(qr/malformed chunked body|Transfer-Encoding/)), 0,
    'and no complaint about the chunked answers');

# ---------------------------------------------------------------------------
# 6. A malformed chunked answer is a broken one

# to the create: the PG created the transaction, its answer is malformed
ok(no_pending(), 'nothing pending');
my $broken0 = $t->metric(undef, 'commerce_gateway_requests_total',
    gateway => 'pg_a', op => 'create', outcome => 'broken');
$sim->control(chunkedBroken => [ 'create' ]);
$c0 = $sim->counters;
my $s15 = stock(15);
$r = order_card(31, 15, 2, $OK_CARD);
is($r->{status}, 202, 'malformed create answer: 202 (it may have arrived)');
is($r->{json}{status}, 'PAYMENT_IN_PROGRESS', 'PAYMENT_IN_PROGRESS');
is($r->{json}{payment}{status}, 'PENDING', 'payment left PENDING');
my $o6 = $r->{json}{id};
my $p6 = $r->{json}{payment}{id};
is(stock(15), $s15 - 2, 'stock still reserved');
is(payment_row($p6)->{transaction_key}, undef, 'no key known');
ok(scalar(sim_lines(qr{POST /api/v1/payments 200 .* chunked-broken})),
    'the PG sent a broken chunked answer');
ok(wait_until(sub { scalar($t->grep_log(
    qr/\[warn\].*malformed chunked body: invalid chunk size/)) },
    timeout => 5),
    'logged at warn: malformed chunked body: invalid chunk size');
ok(scalar($t->grep_log(qr/\[warn\].*payment $p6 left PENDING after invalid/)),
    'logged at warn: payment left PENDING, as for a broken connection');
ok(wait_until(sub { $t->psql("SELECT count(*) FROM"
    . " payment_interface_request_log WHERE payment_id = $p6 AND operation"
    . " = 'CREATE' AND error = 'invalid' AND http_status IS NULL") == 1 },
    timeout => 5), 'create row: error invalid, no status');
is($t->metric(undef, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'create', outcome => 'broken') - $broken0, 1,
    'metrics: one broken create');

$sim->control(chunkedBroken => 0);
$o = wait_decided($o6, 31, timeout => 15);
is($o->{status}, 'PAID', 'the reconciler found it by orderId: PAID');
is(stock(15), $s15 - 2, 'stock kept');
$txns = pg_txns($o6);
is(scalar @$txns, 1, 'one transaction at the PG');
is(payment_row($p6)->{transaction_key}, $txns->[0]{transactionKey},
    'its key recorded from the list');
ok((grep { $_->{operation} eq 'LIST' && ($_->{http_status} // 0) == 200 }
    @{ log_rows($p6) }), 'by a LIST exchange');
$c1 = $sim->counters;
is($c1->{create} - $c0->{create}, 1, 'the create was never sent again');
is($c1->{created} - $c0->{created}, 1, 'one transaction created');

# to the confirming GET: the callback's hint is not confirmed, nothing moves
ok(no_pending(), 'nothing pending');
$sim->control(chunkedBroken => [ 'get', 'list' ]);
$c0 = $sim->counters;
$r = order_card(32, 17, 1, $OK_CARD);
is($r->{status}, 202, 'create answered well: 202');
my $o7 = $r->{json}{id};
my $p7 = $r->{json}{payment}{id};
like(payment_row($p7)->{transaction_key} // '', $KEY_RE, 'key recorded');
ok($sim->wait_counters(sub { $_[0]{callbacks_sent} > $c0->{callbacks_sent}
    && $_[0]{get} > $c0->{get} }, timeout => 5),
    'the PG called back and the module asked it');
sleep 1;
$o = $t->get("/api/v1/orders/$o7", user => 32)->{json};
is($o->{status}, 'PAYMENT_IN_PROGRESS',
    'malformed status answers: still PAYMENT_IN_PROGRESS');
is($o->{payment}{status}, 'PENDING', 'payment PENDING');
my @st = grep { $_->{operation} eq 'STATUS' } @{ log_rows($p7) };
ok(@st >= 1 && !grep({ ($_->{error} // '') ne 'invalid' } @st),
    scalar(@st) . ' status rows, each with error invalid');
$sim->control(chunkedBroken => 0);
$o = wait_decided($o7, 32, timeout => 15);
is($o->{status}, 'PAID', 'once the PG answers well again: PAID');

# ---------------------------------------------------------------------------
# the whole story in the metrics

ok(no_pending(), 'nothing pending at the end');
my $m = $t->metrics;
my $c = $sim->counters;
my $sent = 0;
$sent += $t->metric($m, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'create', outcome => $_) for qw(accepted declined error timeout
    broken);
is($sent, $c->{create}, "creates by outcome add up to the PG's ($sent)");
is($t->metric($m, 'commerce_gateway_requests_total', gateway => 'pg_a',
    op => 'create', outcome => 'accepted'), $c->{created} - 1,
    'accepted creates: the transactions created but the broken one');
is($t->metric($m, 'commerce_gateway_retries_total', gateway => 'pg_a'), 0,
    'no retry');

$t->check_consistency('database consistent');
$sim->stop;
$t->done;
