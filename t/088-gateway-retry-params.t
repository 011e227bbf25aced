#!/usr/bin/perl
# Retry settings per payment gateway: retries=, retry_base=, retry_cap=,
# retry_budget=, retry_budget_min= on commerce_gateway override the
# commerce_gateway_retry* directives for that gateway only.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use PgSim;

my $FAIL_CARD = '4444-4444-4444-4444';      # every create answers 500

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my %sim = map { $_ => PgSim->start(seed => 88, failRate => 0,
    latencyMs => [0, 5], decisionMs => [100, 200],
    log => $t->dir . "/pgsim-$_.log") } qw(a b);

# pg_one: 1 attempt; pg_dflt: the directives' 3 attempts
$t->write_config($t->default_config(http_extra => <<"EOF"));
commerce_zone 1m;
upstream pg_one { server 127.0.0.1:${\ $sim{a}->port }; }
upstream pg_dflt { server 127.0.0.1:${\ $sim{b}->port }; }
commerce_gateway pg_one upstream=pg_one retries=1 window=100 min_calls=100 retry_budget=100 retry_budget_min=100;
commerce_gateway pg_dflt upstream=pg_dflt window=100 min_calls=100 mode=forced_open;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_retries 3;
commerce_gateway_retry_base 20ms;
commerce_gateway_retry_cap 100ms;
commerce_gateway_retry_budget 100;
commerce_gateway_retry_budget_min 100;
EOF
$t->start_nginx;

my $user = 100;
sub pay_failing {
    my $u = ++$user;
    my $o = $t->post('/api/v1/orders', { items => [ { productId => 1,
        quantity => 1 } ] }, user => $u)->{json}{id};
    return $t->post("/api/v1/orders/$o/payment", { method => 'CARD',
        cardType => 'KB', cardNo => $FAIL_CARD }, user => $u);
}

my $c0 = $sim{a}->counters->{create};
my $r = pay_failing();
is_error($r, 503, 'PG_UNAVAILABLE', 'pg_one answers 500: 503');
is($sim{a}->counters->{create} - $c0, 1, 'retries=1: one create, no retry');

# the same gateways, pg_one back to the directives' 3 attempts, pg_dflt
# now first with retries=2 of its own
$t->stop_nginx;
$t->write_config($t->default_config(http_extra => <<"EOF"));
commerce_zone 1m;
upstream pg_one { server 127.0.0.1:${\ $sim{a}->port }; }
upstream pg_dflt { server 127.0.0.1:${\ $sim{b}->port }; }
commerce_gateway pg_dflt upstream=pg_dflt retries=2 retry_base=10ms retry_cap=20ms window=100 min_calls=100;
commerce_gateway pg_one upstream=pg_one window=100 min_calls=100 mode=forced_open;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_retries 3;
commerce_gateway_retry_base 20ms;
commerce_gateway_retry_cap 100ms;
commerce_gateway_retry_budget 100;
commerce_gateway_retry_budget_min 100;
EOF
$t->start_nginx;
$c0 = $sim{b}->counters->{create};
$r = pay_failing();
is_error($r, 503, 'PG_UNAVAILABLE', 'pg_dflt answers 500: 503');
is($sim{b}->counters->{create} - $c0, 2, 'retries=2 of its own: two creates');

# bad values name the gateway and the parameter
for my $bad ([ 'retries=0', qr/invalid/ ], [ 'retries=4', qr/invalid/ ],
             [ 'retry_budget=101', qr/invalid/ ],
             [ 'retry_base=1h', qr/invalid/ ],
             [ 'retry_base=500ms retry_cap=100ms',
               qr/retry_cap is shorter than retry_base/ ])
{
    my ($rc, $out) = $t->nginx_t($t->default_config(http_extra => <<"EOF"));
commerce_zone 1m;
upstream pg_x { server 127.0.0.1:1; }
commerce_gateway pg_x upstream=pg_x $bad->[0];
commerce_gateway_callback_url http://127.0.0.1:1/api/v1/payments/callback;
EOF
    isnt($rc, 0, "nginx -t rejects $bad->[0]");
    like($out, qr/\[emerg\] "commerce_gateway" "pg_x".*$bad->[1]/,
        "... naming the gateway: $bad->[0]");
}

$_->stop for values %sim;
$t->done;
