#!/usr/bin/perl
# nginx -t and the payment-gateway directives: a full gateway configuration
# is accepted; every bad value of commerce_gateway's parameters, of the
# retry / reconciler / payment-timeout / restock-queue directives, of
# commerce_zone and of the rate-limit directives is rejected with an
# [emerg] naming the directive (and, for commerce_gateway, the gateway and
# the parameter).
# Nothing here needs Postgres: nginx -t only parses.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;

# a literal address: nginx -t never connects
my $CONNINFO = 'host=127.0.0.1 port=5432 dbname=commerce user=postgres';

my $CALLBACK = 'commerce_gateway_callback_url '
    . 'http://127.0.0.1:%%PORT%%/api/v1/payments/callback;';

# the http{} part of a configuration with one gateway pg_a; %o: gateway =>
# the commerce_gateway line, extra => more directives, no_zone, no_callback
sub gw_http {
    my (%o) = @_;
    my $gw = $o{gateway} // 'commerce_gateway pg_a upstream=pg_a;';
    return join "\n",
        'upstream pg_a { server 127.0.0.1:9; keepalive 4; }',
        'upstream pg_b { server 127.0.0.1:10; }',
        ($o{no_zone} ? () : 'commerce_zone 1m;'),
        ($o{no_callback} ? () : $CALLBACK),
        $gw, $o{extra} // '', '';
}

sub check {
    my ($http) = @_;
    return $t->nginx_t($t->default_config(conninfo => $CONNINFO,
        http_extra => $http));
}

sub rejects {
    my ($http, $re, $name) = @_;
    my ($rc, $out) = check($http);
    isnt($rc, 0, "nginx -t rejects $name");
    like($out, $re, "... [emerg] naming the directive ($name)") or diag($out);
}

# --- good configurations ------------------------------------------------------

my ($rc, $out) = check(gw_http());
is($rc, 0, 'nginx -t accepts a minimal gateway') or diag($out);

($rc, $out) = check(gw_http(gateway => 'commerce_gateway pg_a upstream=pg_a '
    . 'host=pg.example timeout=1s connect_timeout=500ms keepalive=8 '
    . 'window=10 min_calls=5 failure_rate=50 slow_call=2s slow_rate=80 '
    . 'open=2s probes=2 probe_deadline=3s mode=normal;'
    . "\ncommerce_gateway pg_b upstream=pg_b mode=forced_open;"
    . "\ncommerce_gateway pg_c upstream=pg_a mode=disabled keepalive=0 "
    . 'window=256 min_calls=256 failure_rate=100 probes=32 open=1h;',
    extra => <<'EOF'));
commerce_gateway_callback_secret "0123456789abcdef";
commerce_gateway_callback_tolerance 2m;
commerce_gateway_retries 3;
commerce_gateway_retry_base 50ms;
commerce_gateway_retry_cap 500ms;
commerce_gateway_retry_budget 0;
commerce_gateway_retry_budget_min 0;
commerce_payment_timeout 600s;
commerce_transfer_deadline 45m;
commerce_reconcile_interval 500ms;
commerce_reconcile_age 1s;
commerce_reconcile_grace 3s;
commerce_waitlist_hold 30m;
commerce_waitlist_interval 10s;
commerce_limit_zone per_user key=user rate=10r/s burst=5 size=64k;
commerce_limit_zone per_addr key=addr rate=600r/m dry_run;
commerce_limit charge per_user per_addr;
commerce_limit order_payment per_user;
EOF
is($rc, 0, 'nginx -t accepts every gateway parameter and directive')
    or diag($out);

($rc, $out) = check(join "\n", 'commerce_zone 1m;', $CALLBACK,
    'commerce_gateway pg_late upstream=pg_late;',
    'upstream pg_late { server 127.0.0.1:11; }', '');
is($rc, 0, 'nginx -t accepts an upstream defined after its gateway')
    or diag($out);

($rc, $out) = check('commerce_gateway_retries 1; commerce_reconcile_age 1y;');
is($rc, 0, 'nginx -t accepts the bounds (retries 1, reconcile_age 1y)')
    or diag($out);

# --- commerce_gateway parameters -------------------------------------------

my @bad_params = qw(
    window=0 window=257 window=abc window=-1
    min_calls=0 min_calls=257
    failure_rate=0 failure_rate=101 failure_rate=half
    slow_rate=0 slow_rate=101
    open=0 open=soon open=2h
    probes=0 probes=33 probes=many
    probe_deadline=0 probe_deadline=never
    mode=half_open mode=Normal mode=
    timeout=0 timeout=2h timeout=fast
    connect_timeout=0 connect_timeout=abc
    slow_call=0 slow_call=slowly
    keepalive=-1 keepalive=1025 keepalive=lots
    ssl=yes ssl_verify=maybe
    upstream=
    colour=red noequals =x
);
for my $p (@bad_params) {
    rejects(gw_http(gateway => "commerce_gateway pg_a upstream=pg_a $p;"),
        qr/\[emerg\] "commerce_gateway" "pg_a": invalid parameter "\Q$p\E"/,
        "commerce_gateway $p");
}

my @bad_gw = (
    [ 'a gateway without upstream=',
        'commerce_gateway pg_a timeout=1s;',
        qr/\[emerg\] "commerce_gateway" "pg_a" needs upstream=/ ],
    [ 'a gateway name with a dot',
        'commerce_gateway pg.a upstream=pg_a;',
        qr/\[emerg\] "commerce_gateway" name "pg\.a" may only have/ ],
    [ 'a gateway name of 32 bytes',
        'commerce_gateway ' . ('g' x 32) . ' upstream=pg_a;',
        qr/\[emerg\] "commerce_gateway" name must be 1\.\.31 bytes/ ],
    [ 'a duplicate gateway name',
        "commerce_gateway pg_a upstream=pg_a;\n"
            . 'commerce_gateway pg_a upstream=pg_b;',
        qr/\[emerg\] "commerce_gateway" "pg_a" is duplicate/ ],
    [ 'a ninth gateway',
        join("\n", map { "commerce_gateway g$_ upstream=pg_a;" } 1 .. 9),
        qr/\[emerg\] "commerce_gateway": at most 8 gateways/ ],
    [ 'a gateway with no parameter at all',
        'commerce_gateway pg_a;',
        qr/\[emerg\] invalid number of arguments in "commerce_gateway"/ ],
    # ngx_commerce_gateways_check()'s message; the gateway must be named,
    # not only the upstream
    [ 'a gateway naming an unknown upstream',
        'commerce_gateway pg_a upstream=pg_nope;',
        qr/\[emerg\] "commerce_gateway" "pg_a": upstream "pg_nope" not found/ ],
);
for my $case (@bad_gw) {
    my ($what, $line, $re) = @$case;
    rejects(gw_http(gateway => $line), $re, $what);
}

rejects(gw_http(no_zone => 1),
    qr/\[emerg\] "commerce_gateway" needs "commerce_zone"/,
    'a gateway without commerce_zone');
rejects(gw_http(no_callback => 1),
    qr/\[emerg\] "commerce_gateway" needs "commerce_gateway_callback_url"/,
    'a gateway without commerce_gateway_callback_url');

# --- retries, budget, reconciler, payment timeout -----------------------------

my $between = sub {
    my ($d, $lo, $hi, $v) = @_;
    return qr/\[emerg\] "\Q$d\E" must be between $lo and $hi, not "\Q$v\E"/;
};
my $invalid = sub {
    my ($d) = @_;
    return qr/\[emerg\] "\Q$d\E" directive invalid (?:value|number)/;
};

my @bad_directives = (
    [ 'commerce_gateway_retries', '0', $between ],
    # seed 003: at most 3 attempts
    [ 'commerce_gateway_retries', '4', sub {
        qr/\[emerg\] "commerce_gateway_retries" must be between 1 and 3, not "4"/
    } ],
    [ 'commerce_gateway_retries', '11', sub {
        qr/\[emerg\] "commerce_gateway_retries" must be between 1 and \d+, not "11"/
    } ],
    [ 'commerce_gateway_retries', 'three', $invalid ],
    [ 'commerce_gateway_retry_budget', '101', $between ],
    [ 'commerce_gateway_retry_budget', '-1', $invalid ],
    [ 'commerce_gateway_retry_budget', '20%', $invalid ],
    [ 'commerce_gateway_retry_budget_min', '100001', $between ],
    [ 'commerce_gateway_retry_base', 'soon', $invalid ],
    [ 'commerce_gateway_retry_base', '0', $between ],
    [ 'commerce_gateway_retry_base', '5x', $invalid ],
    [ 'commerce_gateway_retry_cap', 'later', $invalid ],
    [ 'commerce_gateway_callback_tolerance', '0', $between ],
    [ 'commerce_gateway_callback_tolerance', 'forever', $invalid ],
    [ 'commerce_reconcile_interval', '0', $between ],
    [ 'commerce_reconcile_interval', 'often', $invalid ],
    [ 'commerce_reconcile_age', '0', $between ],
    [ 'commerce_reconcile_age', 'old', $invalid ],
    [ 'commerce_reconcile_age', '2y', $between ],
    [ 'commerce_reconcile_grace', '0', $between ],
    [ 'commerce_reconcile_grace', 'never', $invalid ],
    [ 'commerce_payment_timeout', '0', $between ],
    [ 'commerce_payment_timeout', 'forever', $invalid ],
    [ 'commerce_payment_timeout', '2y', $between ],
    [ 'commerce_waitlist_hold', '0', $between ],
    [ 'commerce_waitlist_hold', 'long', $invalid ],
    [ 'commerce_waitlist_hold', '2y', $between ],
    [ 'commerce_waitlist_interval', '0', $between ],
    [ 'commerce_waitlist_interval', 'often', $invalid ],
    [ 'commerce_transfer_deadline', '0', $between ],
    [ 'commerce_transfer_deadline', 'later', $invalid ],
    [ 'commerce_transfer_deadline', '2y', $between ],
);
my %range = (
    commerce_gateway_retries => [ 1, 3 ],
    commerce_gateway_retry_budget => [ 0, 100 ],
    commerce_gateway_retry_budget_min => [ 0, 100000 ],
    commerce_gateway_retry_base => [ 1, 86400000 ],
    commerce_gateway_retry_cap => [ 1, 86400000 ],
    commerce_reconcile_interval => [ 1, 86400000 ],
    commerce_gateway_callback_tolerance => [ 1, 31536000 ],
    commerce_reconcile_age => [ 1, 31536000 ],
    commerce_reconcile_grace => [ 1, 31536000 ],
    commerce_payment_timeout => [ 1, 31536000 ],
    commerce_waitlist_hold => [ 1, 31536000 ],
    commerce_waitlist_interval => [ 1, 86400000 ],
    commerce_transfer_deadline => [ 1, 31536000 ],
);
for my $case (@bad_directives) {
    my ($d, $v, $re) = @$case;
    rejects(gw_http(extra => "$d $v;"),
        $re->($d, @{ $range{$d} }, $v), "'$d $v;'");
}

rejects(gw_http(extra => 'commerce_gateway_retries 3; '
    . 'commerce_gateway_retries 2;'),
    qr/\[emerg\] "commerce_gateway_retries" directive is duplicate/,
    'commerce_gateway_retries twice');
rejects(gw_http(extra => 'commerce_gateway_retries 2 3;'),
    qr/\[emerg\] invalid number of arguments in "commerce_gateway_retries"/,
    'commerce_gateway_retries with two values');

# --- commerce_refund (issue 13 section 3) ------------------------------------

($rc, $out) = check(gw_http(extra => 'commerce_refund interval=500ms attempts=3'
    . ' backoff=5s lease=2m batch=10;'));
is($rc, 0, 'nginx -t accepts commerce_refund with every parameter') or diag($out);
for my $p ('interval=0', 'interval=soon', 'attempts=0', 'attempts=101', 'backoff=0',
           'lease=2d', 'batch=x', 'colour=red') {
    rejects(gw_http(extra => "commerce_refund $p;"),
        qr/\[emerg\] commerce_refund: invalid parameter "\Q$p\E"/, "commerce_refund $p");
}
rejects(gw_http(extra => 'commerce_refund batch=1; commerce_refund batch=2;'),
    qr/\[emerg\] "commerce_refund" directive is duplicate/, 'commerce_refund twice');

# --- commerce_zone ------------------------------------------------------------

rejects(gw_http(no_zone => 1, extra => 'commerce_zone 1k;'),
    qr/\[emerg\] "commerce_zone" size "1k" is invalid or too small/,
    'commerce_zone 1k');
rejects(gw_http(no_zone => 1, extra => 'commerce_zone big;'),
    qr/\[emerg\] "commerce_zone" size "big" is invalid or too small/,
    'commerce_zone big');
rejects(gw_http(extra => 'commerce_zone 2m;'),
    qr/\[emerg\] "commerce_zone" directive is duplicate/,
    'commerce_zone twice');

# --- rate limits (beyond t/100-ratelimit.t) -----------------------------------

my @bad_limit_zone = (
    'size=1k', 'size=lots', 'burst=1000001', 'burst=-1', 'burst=x',
    'dry_run=1', 'key=both', 'colour=red',
);
for my $p (@bad_limit_zone) {
    rejects("commerce_limit_zone z key=user rate=1r/s $p;",
        qr/\[emerg\] "commerce_limit_zone" "z": invalid parameter "\Q$p\E"/,
        "commerce_limit_zone $p");
}
for my $p ('rate=0r/s', 'rate=1r/h', 'rate=r/s', 'rate=1000001r/s',
    'rate=-1r/s', 'rate=10')
{
    rejects("commerce_limit_zone z key=addr $p;",
        qr/\[emerg\] "commerce_limit_zone" "z": invalid parameter "\Q$p\E"/,
        "commerce_limit_zone $p");
}
rejects('commerce_limit_zone z key=user;',
    qr/\[emerg\] "commerce_limit_zone" "z" needs key= and rate=/,
    'commerce_limit_zone without rate=');
rejects("commerce_limit_zone z key=user rate=1r/s;\n"
    . 'commerce_limit_zone z key=addr rate=2r/s;',
    qr/\[emerg\] "commerce_limit_zone" "z" is duplicate/,
    'a duplicate commerce_limit_zone');
rejects('commerce_limit_zone z;',
    qr/\[emerg\] invalid number of arguments in "commerce_limit_zone"/,
    'commerce_limit_zone with a name only');
rejects('commerce_limit_zone z key=user rate=1r/s; commerce_limit charge;',
    qr/\[emerg\] invalid number of arguments in "commerce_limit"/,
    'commerce_limit without a zone');
rejects('commerce_limit charge z; commerce_limit_zone z key=user rate=1r/s;',
    qr/\[emerg\] "commerce_limit": unknown zone "z" \(declare it first/,
    'commerce_limit before its zone is declared');
rejects('commerce_limit_zone z key=user rate=1r/s; commerce_limit Charge z;',
    qr/\[emerg\] "commerce_limit": unknown route "Charge"/,
    'commerce_limit with a route in the wrong case');

$t->done;
