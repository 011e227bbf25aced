#!/usr/bin/perl
# Card payments to a payment gateway over TLS (commerce_gateway ssl=on).
#
# The PG is the simulator (t/pgsim, plain HTTP) behind a TLS front: a second
# server block of the same nginx terminates TLS with a self-signed
# certificate for "localhost" (made here with the openssl CLI) and proxies
# to the simulator.  The gateway pg_tls points at that front.
#
#   1. ssl_name=localhost, ssl_trusted_certificate=<the certificate>: card
#      payments are 202, then PAID through the callback (create and the
#      confirming GET both over TLS, SNI "localhost");
#   2. the TLS connections are kept: the front's access log ($connection,
#      $connection_requests) shows many requests over at most one
#      connection per worker;
#   3. reload with ssl_name=wrong.example: the peer fails verification after
#      the handshake, before any request is written: 503 PG_UNAVAILABLE,
#      nothing reaches the front or the simulator, "certificate does not
#      match" at [error] once per attempt, the order stays payable and is
#      then paid with BALANCE;
#   4. reload with ssl_verify=off and the same wrong name: 202, then PAID;
#   5. nginx -t refuses ssl=maybe and ssl_verify=maybe, naming
#      commerce_gateway.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;
use Time::HiRes qw(sleep);

binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);

my $CARD = '1111-1111-1111-1111';          # the simulator approves it
my $KEY_RE = qr/\A\d{8}:TR:[0-9a-f]{6}\z/;
my $PRICE = 1000;                           # product 1 of sql/demo.sql
my $ATTEMPTS = 3;                           # commerce_gateway_retries below

my $t = CommerceTest->new;
my $dir = $t->dir;

# ---------------------------------------------------------------------------
# setup: certificate, Postgres, simulator, nginx with its TLS front

my ($rc, $out) = $t->run([ 'openssl', 'req', '-x509', '-newkey', 'ec',
    '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
    '-keyout', "$dir/tls.key", '-out', "$dir/tls.crt" ], timeout => 30);
is($rc, 0, 'openssl made a self-signed certificate for localhost')
    or BAIL_OUT("openssl req failed: $out");

$t->start_pg;
$t->load_demo;

my $sim = PgSim->start(port => $t->port('sim'), seed => 85, failRate => 0,
    latencyMs => [1, 5], decisionMs => [100, 200],
    log => "$dir/pgsim.log");

# The gateway and the TLS front.  %%PORT_tls%% is the front, %%PORT_sim%%
# the simulator; the front logs each request with its connection.
my $HTTP = <<'EOF';
commerce_zone 1m;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_retries 3;
commerce_gateway_retry_base 20ms;
commerce_gateway_retry_cap 100ms;

upstream pg_tls { server 127.0.0.1:%%PORT_tls%%; }

log_format tls '$connection $connection_requests $ssl_protocol '
               '$ssl_server_name "$request" $status';

server {
    listen 127.0.0.1:%%PORT_tls%% ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate %%BASEDIR%%/tls.crt;
    ssl_certificate_key %%BASEDIR%%/tls.key;
    access_log %%TESTDIR%%/tls-access.log tls;

    location / {
        proxy_pass http://127.0.0.1:%%PORT_sim%%;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
}
EOF

sub config {
    my ($params) = @_;
    return $t->default_config(http_extra => $HTTP
        . "commerce_gateway pg_tls upstream=pg_tls ssl=on $params;\n");
}

my $TRUST = 'ssl_trusted_certificate=%%BASEDIR%%/tls.crt';

$t->write_config(config("ssl_name=localhost $TRUST"));
$t->start_nginx;

# ---------------------------------------------------------------------------
# helpers

sub card { { method => 'CARD', cardType => 'KB', cardNo => $CARD } }
sub stock { $t->psql('SELECT stock FROM products WHERE id = 1') + 0 }

# the order document of one product 1 bought by $user
sub order_doc {
    my ($user, $status, $payment) = @_;
    return {
        id => qr/^\d+$/, userId => 0 + $user, status => $status,
        items => [ { productId => 1, name => 'Product 1', quantity => 1,
                     unitPrice => $PRICE, amount => $PRICE } ],
        totalAmount => $PRICE, discountAmount => 0, paymentAmount => $PRICE,
        payment => $payment,
        payments => $payment ? sub { ref $_[0] eq 'ARRAY' && @{ $_[0] } }
                             : [],                                # t/175
        createdAt => qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
    };
}

sub card_payment {
    my ($status, $reason) = @_;
    return { id => sub { $_[0] =~ /^\d+$/ }, method => 'CARD',
        status => $status, amount => $PRICE, reason => $reason };
}

# the TLS front's access log: [{conn, n, proto, sni, request, status}]
sub tls_log {
    my @rows;
    for (split /\n/, $t->read_file('tls-access.log')) {
        /^(\d+) (\d+) (\S+) (\S+) "([^"]*)" (\d+)$/
            or die "unexpected tls-access.log line: $_";
        push @rows, { conn => $1, n => $2, proto => $3, sni => $4,
            request => $5, status => $6 };
    }
    return @rows;
}

# one card payment, create and pay in one request: 202, then PAID
sub pay_by_card {
    my ($user, $name) = @_;
    my $r = $t->post('/api/v1/orders', { items => [ { productId => 1,
        quantity => 1 } ], payment => card() }, user => $user);
    is_response($r, 202, order_doc($user, 'PAYMENT_IN_PROGRESS',
        card_payment('PENDING', undef)), "$name: 202 PAYMENT_IN_PROGRESS");
    my $id = $r->{json}{id} // return;
    my $o = $t->wait_order($id, user => $user, timeout => 10,
        until => sub { $_[0]{status} ne 'PAYMENT_IN_PROGRESS' });
    cmp_json($o, order_doc($user, 'PAID', card_payment('SUCCESS', undef)),
        "$name: PAID, payment SUCCESS");
    return $id;
}

# ---------------------------------------------------------------------------
# 1. Card payments over TLS, PAID through the callback

my $N = 4;
my $c0 = $sim->counters;
my $stock0 = stock();
my @orders = map { pay_by_card($_, "TLS payment $_") } 1 .. $N;

my $c = $sim->wait_counters(sub { $_[0]{callbacks_sent}
    >= $c0->{callbacks_sent} + $N }, timeout => 5);
ok($c, "the simulator sent $N callbacks");
$c //= $sim->counters;
is($c->{create} - $c0->{create}, $N, "$N creates reached the simulator");
is($c->{created} - $c0->{created}, $N, "$N transactions created");
is($c->{get} - $c0->{get}, $N, "$N confirming GETs (one per callback)");
is(stock(), $stock0 - $N, 'stock taken once per paid order');

for my $i (0 .. $#orders) {
    my $txns = $sim->transactions(orderId => sprintf('%06d', $orders[$i]));
    cmp_json([ map { { key => $_->{transactionKey}, status => $_->{status},
        user => $_->{userId},
        callbacks => [ map { $_->{status} } @{ $_->{callbacks} } ] } }
        @$txns ],
        [ { key => $KEY_RE, status => 'SUCCESS', user => sprintf('%d', $i + 1),
            callbacks => [ 200 ] } ],
        "order $orders[$i]: one transaction, its callback answered 200");
}
is($t->psql(q{SELECT count(*) FROM payments WHERE method = 'CARD'
    AND status = 'SUCCESS' AND gateway = 'pg_tls'
    AND transaction_key IS NOT NULL}), $N,
    "$N SUCCESS payments of gateway pg_tls with their keys");

# every exchange went through the TLS front, with SNI "localhost"
my @log = tls_log();
is(scalar @log, 2 * $N, "the TLS front logged $N creates and $N GETs");
is(scalar(grep { $_->{request} eq 'POST /api/v1/payments HTTP/1.1' } @log),
    $N, "$N POST /api/v1/payments");
is(scalar(grep { $_->{request} =~ m{^GET /api/v1/payments/\d{8}:TR:[0-9a-f]{6} HTTP/1\.1$} }
    @log), $N, "$N GET /api/v1/payments/{key}");
is_deeply([ sort keys %{ { map { $_->{proto} => 1 } @log } } ], ['TLSv1.3'],
    'all over TLSv1.3 (the module offers 1.2 and 1.3)');
is_deeply([ sort keys %{ { map { $_->{sni} => 1 } @log } } ], ['localhost'],
    'SNI localhost (ssl_name=)');
is_deeply([ sort keys %{ { map { $_->{status} => 1 } @log } } ], [200],
    'all answered 200');

# ---------------------------------------------------------------------------
# 2. The TLS connections are kept alive

# The payments ran one after another, so a worker never needs two
# connections at once: with keep-alive, each worker opens one and reuses it
# (the callback's GET may come from the other worker).
my %per_conn;
push @{ $per_conn{ $_->{conn} } }, $_->{n} for @log;
my @conns = sort { $a <=> $b } keys %per_conn;
ok(@conns >= 1 && @conns <= 2, scalar(@conns) . ' TLS connection(s) for '
    . scalar(@log) . ' requests: at most one per worker (2 workers)')
    or diag(explain \%per_conn);
for my $conn (@conns) {
    my $n = @{ $per_conn{$conn} };
    is_deeply($per_conn{$conn}, [ 1 .. $n ],
        "connection $conn carried requests 1..$n, in order");
}
my ($most) = sort { $b <=> $a } map { scalar @$_ } values %per_conn;
cmp_ok($most, '>=', $N, "one TLS connection carried $most requests");

# ---------------------------------------------------------------------------
# 3. A certificate that does not match ssl_name: nothing is sent

my @old = $t->reload_nginx(config => config("ssl_name=wrong.example $TRUST"));
ok($t->wait_pids_gone(\@old), 'reload (ssl_name=wrong.example): old workers'
    . ' exited');

my $r = $t->post('/api/v1/orders', { items => [ { productId => 1,
    quantity => 1 } ] }, user => 11);
is_response($r, 201, order_doc(11, 'PENDING_PAYMENT', undef),
    'an order to pay later: 201 PENDING_PAYMENT');
my $o_wrong = $r->{json}{id};

$c0 = $sim->counters;
my $log0 = scalar tls_log();
my $stock1 = stock();
my $errors0 = scalar $t->grep_log(qr/certificate does not match/);
# the front's word for a TLS connection closed before any request
my $TLS_PORT = $t->port('tls');
my $closed_re = qr/\[info\] .*client closed connection while waiting for request,.* server: 127\.0\.0\.1:$TLS_PORT$/;
my $closed0 = scalar $t->grep_log($closed_re);

$r = $t->post("/api/v1/orders/$o_wrong/payment", card(), user => 11);
is_error($r, 503, 'PG_UNAVAILABLE', 'CARD with the wrong name: 503 PG_UNAVAILABLE');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, '... with Retry-After');

$c = $sim->counters;
is($c->{create}, $c0->{create}, 'the simulator got no create');
is($c->{connections}, $c0->{connections}, 'not even a connection');
is(scalar tls_log(), $log0, 'no request reached the TLS front');
ok(wait_until(sub { $t->grep_log($closed_re) - $closed0 == $ATTEMPTS },
    timeout => 5), "the front saw $ATTEMPTS handshakes end without a request")
    or diag(join "\n", $t->grep_log($closed_re));

my @mismatch = $t->grep_log(qr/certificate does not match/);
splice @mismatch, 0, $errors0;
is(scalar @mismatch, $ATTEMPTS, "\"certificate does not match\" once per"
    . " attempt ($ATTEMPTS)") or diag(join "\n", @mismatch);
is(scalar(grep { /\[error\] .*commerce: gateway pg_tls: certificate does not match "wrong\.example"/ }
    @mismatch), scalar @mismatch, '... each at [error], naming gateway and name')
    or diag(join "\n", @mismatch);
is_deeply([ $t->grep_log(qr/\[(?:crit|alert|emerg)\]/) ], [],
    'no [crit], [alert] or [emerg] in the error log');

my $o = $t->get("/api/v1/orders/$o_wrong", user => 11);
is_response($o, 200, order_doc(11, 'PENDING_PAYMENT',
    card_payment('FAILED', 'payment gateway unavailable')),
    'the order stays payable: PENDING_PAYMENT, the attempt FAILED');
is(stock(), $stock1, 'its stock stays reserved');
is($t->psql("SELECT count(*) FROM payments WHERE order_id = $o_wrong"
    . " AND transaction_key IS NOT NULL"), 0, 'no transaction key recorded');

$r = $t->post("/api/v1/orders/$o_wrong/payment", { method => 'BALANCE' },
    user => 11);
is_response($r, 200, order_doc(11, 'PAID', { id => sub { $_[0] =~ /^\d+$/ },
    method => 'BALANCE', status => 'SUCCESS', amount => $PRICE }),
    'then paid with BALANCE: 200 PAID');
is($t->get('/api/v1/balance', user => 11)->{json}{balance}, 100000 - $PRICE,
    'the balance was charged');

# ---------------------------------------------------------------------------
# 4. ssl_verify=off: the same wrong name is accepted

@old = $t->reload_nginx(config =>
    config("ssl_verify=off ssl_name=wrong.example $TRUST"));
ok($t->wait_pids_gone(\@old), 'reload (ssl_verify=off): old workers exited');

$c0 = $sim->counters;
$log0 = scalar tls_log();
$errors0 = scalar $t->grep_log(qr/certificate does not match/);
pay_by_card(12, 'ssl_verify=off, wrong name');
ok($sim->wait_counters(sub { $_[0]{callbacks_sent}
    >= $c0->{callbacks_sent} + 1 }, timeout => 5), 'its callback was sent');
$c = $sim->counters;
is($c->{create} - $c0->{create}, 1, 'one create reached the simulator');
is($c->{get} - $c0->{get}, 1, 'one confirming GET');
my @new = (tls_log())[ $log0 .. scalar(tls_log()) - 1 ];
is_deeply([ map { "$_->{sni} $_->{status}" } @new ],
    [ 'wrong.example 200', 'wrong.example 200' ],
    'both over TLS with SNI wrong.example');
is(scalar $t->grep_log(qr/certificate does not match/), $errors0,
    'no certificate error logged');

# ---------------------------------------------------------------------------
# 5. nginx -t refuses bad ssl values, naming commerce_gateway

for my $bad ('ssl=maybe', 'ssl_verify=maybe') {
    ($rc, $out) = $t->nginx_t($t->default_config(http_extra => $HTTP
        . "commerce_gateway pg_tls upstream=pg_tls $bad;\n"));
    isnt($rc, 0, "nginx -t rejects $bad");
    like($out, qr/\[emerg\] "commerce_gateway" "pg_tls": invalid parameter "\Q$bad\E"/,
        '... naming commerce_gateway') or diag($out);
}

$t->check_consistency('database consistent');
$sim->stop;
$t->done;
