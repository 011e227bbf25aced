#!/usr/bin/perl
# Rate limits in shared-memory zones: a burst passes, the next request is
# 429 RATE_LIMITED with Retry-After and RateLimit-* headers and changes
# nothing; the zone is shared by both workers, keys are per user or per
# address, a request refused by one zone uses up nothing in another, the
# limit recovers after its window, and a dry_run zone only logs and counts.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $limits = <<'CONF';
commerce_zone 1m;
commerce_limit_zone charge_user key=user rate=1r/s burst=4 size=1m;
commerce_limit_zone charge_addr key=addr rate=60r/m burst=50 size=1m;
commerce_limit_zone orders_dry key=user rate=1r/m burst=1 size=1m dry_run;
commerce_limit charge charge_user charge_addr;
commerce_limit orders orders_dry;
CONF

$t->write_config($t->default_config(
    http_extra   => $limits,
    server_extra => 'location = /metrics { commerce_metrics; }',
));
$t->start_nginx;

sub charge {
    my ($user) = @_;
    return $t->post('/api/v1/balance/charge', { amount => 10 }, user => $user,
        headers => { Connection => 'close' });
}

sub balance { scalar $t->psql("SELECT balance FROM users WHERE id = $_[0]") }

# --- burst, then 429 ------------------------------------------------------

# burst=4: five requests at once from rest; new connections land on both
# workers, so this also shows the zone is shared
my @ok = map { charge(1) } 1 .. 5;
is_deeply([map { $_->{status} } @ok], [200, 200, 200, 200, 200],
    'user 1: the burst of 5 passes');
is($ok[0]{headers}{'ratelimit-limit'}, 5, 'RateLimit-Limit is burst + 1');
like($ok[4]{headers}{'ratelimit-remaining'} // '', qr/^[01]$/,
    'RateLimit-Remaining near 0 after the burst');

my $before = balance(1);
my $r = charge(1);
is($r->{status}, 429, 'the 6th is 429');
is_deeply($r->{json}, { code => 'RATE_LIMITED',
    message => 'too many requests, retry later' }, 'RATE_LIMITED body');
like($r->{headers}{'retry-after'} // '', qr/^[12]$/, 'Retry-After in seconds');
is($r->{headers}{'ratelimit-remaining'}, 0, 'RateLimit-Remaining: 0');
like($r->{headers}{'ratelimit-reset'} // '', qr/^\d+$/, 'RateLimit-Reset');
like($r->{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/,
    'X-Request-Id on a 429');
is(balance(1), $before, 'a refused charge changed nothing');

# --- keys are per user; a refusal uses up nothing in the other zone -------

is(charge(2)->{status}, 200, 'user 2 has a bucket of its own');

# charge_addr (one address for all users here) saw 7 checks but took only
# the 6 places of the requests that passed
my $m = $t->metrics;
is($m->{'commerce_rate_limit_requests_total{zone="charge_user",result="rejected"}'},
    1, 'metrics: one rejection in charge_user');
is($m->{'commerce_rate_limit_requests_total{zone="charge_addr",result="passed"}'},
    6, 'metrics: charge_addr counted only the 6 that passed');
is($m->{'commerce_http_requests_total{route="charge",status="429"}'}, 1,
    'metrics: one 429 for the charge route');

# --- recovery after the window --------------------------------------------

sleep 2;
is(charge(1)->{status}, 200, 'user 1 may charge again a second later');

# --- dry run: logged and counted, never refused ---------------------------

my @orders = map {
    $t->post('/api/v1/orders', { items => [{ productId => 1, quantity => 1 }] },
        user => 3)->{status}
} 1 .. 4;
is_deeply(\@orders, [201, 201, 201, 201],
    'a dry_run zone lets everything through');
ok(scalar $t->grep_log(qr/rate limit "orders_dry" exceeded by 3 \(dry run\)/),
    'dry-run overruns are logged at warn');
$m = $t->metrics;
is($m->{'commerce_rate_limit_requests_total{zone="orders_dry",result="dry_run"}'},
    2, 'metrics: 2 dry-run overruns (burst=1: two pass from rest)');

# --- nginx -t names the directive -----------------------------------------

for my $bad ('commerce_limit_zone z key=user rate=fast;',
             'commerce_limit_zone z key=nobody rate=1r/s;',
             'commerce_limit_zone z rate=1r/s;',
             'commerce_limit nowhere z;',
             'commerce_limit charge nozone;')
{
    my ($rc, $out) = $t->nginx_t($t->default_config(http_extra => $bad));
    isnt($rc, 0, "nginx -t rejects: $bad");
    like($out, qr/commerce_limit/, '... naming the directive');
}

$t->done;
