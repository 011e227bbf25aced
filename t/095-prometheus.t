#!/usr/bin/perl
# Monitoring: the Prometheus alert rules, their unit tests, the example
# Prometheus and Alertmanager configurations and the Grafana dashboard of
# conf/ are valid and use only metrics the module serves; then a real
# Prometheus scrapes the `commerce_metrics` location of a running nginx,
# stores its series, evaluates the shipped alert rules against them (a
# forced-open breaker makes CommerceGatewayBreakerOpen pending) and answers
# every query of the dashboard.
#
# Needs promtool and prometheus (Debian `prometheus`) and amtool (Debian
# `prometheus-alertmanager`), both in t/apt-packages.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;
use File::Copy qw(copy);
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

my $ROOT = CommerceTest->root;
my $PROM = "$ROOT/conf/prometheus";
my $DASH = "$ROOT/conf/grafana/commerce-dashboard.json";
my $T0 = time;

# The metric families of ngx_commerce_metrics_handler (src/ngx_commerce_shm.c)
my %FAMILY = map { $_ => 1 } qw(
    commerce_http_requests_total
    commerce_http_request_duration_seconds
    commerce_db_pool_connections
    commerce_db_pool_queued
    commerce_db_pool_queued_max
    commerce_db_pool_queries_total
    commerce_db_pool_waited_total
    commerce_db_pool_wait_seconds
    commerce_db_errors_total
    commerce_gateway_requests_total
    commerce_gateway_request_duration_seconds
    commerce_gateway_breaker_state
    commerce_gateway_breaker_transitions_total
    commerce_gateway_retries_total
    commerce_gateway_retry_budget_exhausted_total
    commerce_net_cancels_total
    commerce_payments_pending
    commerce_payments_pending_oldest_age_seconds
    commerce_reconciler_runs_total
    commerce_payments_settled_total
    commerce_callbacks_total
    commerce_rate_limit_requests_total
    commerce_events_delivered_total
    commerce_events_retried_total
    commerce_events_dead_total
    commerce_events_backlog
    commerce_events_oldest_age_seconds
    commerce_events_dead
    commerce_retention_purged_total
    commerce_retention_failures_total
);
my %HISTOGRAM = map { $_ => 1 } qw(commerce_http_request_duration_seconds
    commerce_gateway_request_duration_seconds commerce_db_pool_wait_seconds);

# series name -> family
sub family_of {
    my ($name) = @_;
    return $name if $FAMILY{$name} && !$HISTOGRAM{$name};
    if ($name =~ /^(.*)_(bucket|sum|count)$/ && $HISTOGRAM{$1}) {
        return $1;
    }
    return undef;
}

my $tools_ok = 1;
for my $tool (qw(promtool prometheus amtool)) {
    my $found = grep { -x "$_/$tool" } split /:/, $ENV{PATH} // '';
    ok($found, "$tool is installed") or do {
        $tools_ok = 0;
        diag("$tool is missing: install the Debian packages of "
            . "t/apt-packages (prometheus, prometheus-alertmanager)");
    };
}
unless ($tools_ok) {
    done_testing();
    exit 1;
}

my $t = CommerceTest->new;

# --- static checks of conf/ -------------------------------------------------

# the rules, counted in the file (each "- alert:" line)
my $NRULES = () = $t->read_file("$PROM/commerce-alerts.yml") =~ /^\s*- alert:/mg;
my ($rc, $out) = $t->run([ 'promtool', 'check', 'rules',
    "$PROM/commerce-alerts.yml" ], timeout => 30);
is($rc, 0, 'promtool check rules commerce-alerts.yml') or diag($out);
like($out, qr/SUCCESS: $NRULES rules found/, "$NRULES alert rules");

($rc, $out) = $t->run([ 'promtool', 'test', 'rules',
    "$PROM/commerce-alerts.test.yml" ], timeout => 30);
is($rc, 0, 'promtool test rules commerce-alerts.test.yml') or diag($out);

# the rule file is found relative to prometheus.yml, as it is shipped
($rc, $out) = $t->run([ 'promtool', 'check', 'config',
    "$PROM/prometheus.yml" ], timeout => 30);
is($rc, 0, 'promtool check config prometheus.yml') or diag($out);
like($out, qr/SUCCESS: 1 rule files found/, 'prometheus.yml loads the rules');

($rc, $out) = $t->run([ 'amtool', 'check-config',
    "$PROM/alertmanager.yml" ], timeout => 30);
is($rc, 0, 'amtool check-config alertmanager.yml') or diag($out);

for my $case ([ 'page', 'commerce-slack-page',
                'alertname=CommerceGatewayBreakerOpen', 'gateway=pg_a' ],
              [ 'page', 'commerce-slack-page',
                'alertname=CommerceGatewayFailureRateHigh', 'gateway=pg_a' ],
              [ 'warning', 'commerce-email',
                'alertname=CommercePendingPaymentTooOld' ],
              [ 'warning', 'commerce-email',
                'alertname=CommerceDbPoolDown' ]) {
    my ($sev, $receiver, @labels) = @$case;
    ($rc, $out) = $t->run([ 'amtool', 'config', 'routes', 'test',
        "--config.file=$PROM/alertmanager.yml", "severity=$sev", @labels ],
        timeout => 30);
    $out =~ s/^Warning:.*\n?//mg;
    $out =~ s/\s+\z//;
    is($out, $receiver, "alertmanager routes $labels[0] ($sev) to $receiver");
}

# the alert rules' own metric names
my $rules_text = $t->read_file("$PROM/commerce-alerts.yml");
my @rule_exprs;
while ($rules_text =~ /^\s+expr:\s*(\|\n((?:\s{10,}.*\n|\s*\n)+)|(.+)\n)/mg) {
    push @rule_exprs, defined $3 ? $3 : $2;
}
is(scalar @rule_exprs, $NRULES, "$NRULES rule expressions read");

# the dashboard
my $dash = eval { JSON::PP->new->utf8->decode($t->read_file($DASH)) };
ok($dash, 'the Grafana dashboard is valid JSON') or diag($@);
$dash //= {};

my (@dash_exprs, @panel_titles);
my $walk;
$walk = sub {
    my ($panels) = @_;
    for my $p (@{ $panels // [] }) {
        push @panel_titles, $p->{title} if $p->{type} ne 'row';
        for my $tg (@{ $p->{targets} // [] }) {
            push @dash_exprs, [ $p->{title}, $tg->{expr} ] if $tg->{expr};
        }
        $walk->($p->{panels});
    }
};
$walk->($dash->{panels});
my @var_queries = map {
    my $q = ref $_->{query} ? $_->{query}{query} : $_->{query};
    $_->{type} eq 'query' ? ([ "variable $_->{name}", $q ]) : ();
} @{ $dash->{templating}{list} // [] };

ok($dash->{schemaVersion} >= 36, "schemaVersion $dash->{schemaVersion}");
ok((grep { $_->{name} eq 'DS_PROMETHEUS' && $_->{type} eq 'datasource' }
    @{ $dash->{templating}{list} // [] }),
    'datasource variable DS_PROMETHEUS');
my @bad_ds;
my $check_ds;
$check_ds = sub {
    my ($p) = @_;
    for my $x ($p, @{ $p->{targets} // [] }) {
        next unless $x->{datasource};
        push @bad_ds, $p->{title}
            if ($x->{datasource}{uid} // '') ne '${DS_PROMETHEUS}';
    }
    $check_ds->($_) for @{ $p->{panels} // [] };
};
$check_ds->($_) for @{ $dash->{panels} // [] };
is_deeply(\@bad_ds, [], 'every panel and target uses ${DS_PROMETHEUS}');

my $ids_ok = 1;
my %seen_id;
for my $p (@{ $dash->{panels} // [] }) {
    $ids_ok = 0 if !defined $p->{id} || $seen_id{$p->{id}}++ || !$p->{gridPos};
}
ok($ids_ok, 'panels have distinct ids and a gridPos');

for my $want (qr/API requests/, qr/API latency/, qr/PG requests by outcome/,
    qr/PG failure rate/, qr/PG latency/, qr/Circuit breaker state/,
    qr/Breaker transitions/, qr/Retries/, qr/Pending payments/,
    qr/settled/, qr/Postgres pool/, qr/Net-cancels/, qr/Event backlog/,
    qr/Oldest undelivered event/, qr/delivered \/ retried \/ dead/,
    qr/Dead-letter queue/) {
    ok((grep { $_ =~ $want } @panel_titles), "dashboard panel $want");
}

# The metric names in a PromQL expression: identifiers outside strings,
# label matchers and ranges that are neither functions, keywords nor
# grouping labels.
my %KEYWORD = map { $_ => 1 } qw(and or unless by without on ignoring
    group_left group_right bool offset inf nan);
sub metric_names {
    my ($e) = @_;
    $e =~ s/^\s*label_values\((.*),\s*\w+\s*\)\s*$/$1/s;   # Grafana
    $e =~ s/"(?:[^"\\]|\\.)*"//g;                  # strings
    $e =~ s/\{[^{}]*\}//g;                         # label matchers
    $e =~ s/\[[^\]]*\]//g;                         # ranges
    $e =~ s/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)//g;
    $e =~ s/\$\{?\w+\}?//g;                        # Grafana variables
    my @names;
    while ($e =~ /([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g) {
        next if $2;                                # a function
        next if $KEYWORD{ lc $1 };
        push @names, $1;
    }
    return @names;
}

my (%used, @unknown);
for my $x ((map { [ 'alert rules', $_ ] } @rule_exprs), @dash_exprs,
    @var_queries) {
    my @names = metric_names($x->[1]);
    push @unknown, "$x->[0]: no metric in $x->[1]" unless @names;
    for my $n (@names) {
        my $f = family_of($n);
        if ($f) { $used{$f} = 1 } else { push @unknown, "$x->[0]: $n" }
    }
}
is_deeply(\@unknown, [], 'alert rules and dashboard use only the metrics '
    . 'the module serves');
cmp_ok(scalar @dash_exprs, '>=', 20, scalar(@dash_exprs)
    . ' dashboard queries');
is_deeply([ grep { !$used{$_} } sort keys %FAMILY ], [],
    'every metric family is on the dashboard or in an alert');

# --- nginx serving /metrics ---------------------------------------------------

$t->start_pg;
$t->load_demo;
# two gateways whose upstream nobody listens on: nothing here calls them, the
# breaker gauges exist all the same; pg_b is forced open by configuration
$t->write_config($t->default_config(workers => 2, http_extra => <<'EOF',
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:%%PORT_deadpg%%; }
upstream pg_b { server 127.0.0.1:%%PORT_deadpg%%; }
commerce_gateway pg_a upstream=pg_a;
commerce_gateway pg_b upstream=pg_b mode=forced_open;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_gateway_callback_secret "metrics-test-callback-secret";
upstream dp { server 127.0.0.1:%%PORT_deadpg%%; }
commerce_event_sink dp http upstream=dp;
EOF
    server_extra => 'location = /metrics { commerce_metrics; }'));
$t->start_nginx;
my $nginx_port = $t->nginx_port;

# traffic: 3 product lists, one unknown product, one balance, one 401 (which
# is counted before routing, so its route is not checked)
my %expect = (
    'products 200' => 3,
    'product 404'  => 1,
    'balance 200'  => 1,
);
is($t->get('/api/v1/products?page=0&size=5', user => 1)->{status}, 200, 'products')
    for 1 .. 3;
is($t->get('/api/v1/products/999999', user => 1)->{status}, 404, 'unknown product');
is($t->get('/api/v1/balance', user => 1)->{status}, 200, 'balance');
is($t->get('/api/v1/balance')->{status}, 401, 'balance without a token');

my $m = $t->get('/metrics');
is($m->{status}, 200, 'GET /metrics');
like($m->{headers}{'content-type'} // '', qr{^text/plain; version=0\.0\.4},
    'Prometheus text format content type');
($rc, $out) = $t->run([ 'promtool', 'check', 'metrics' ],
    stdin => $m->{body}, timeout => 30);
is($rc, 0, 'promtool check metrics: the exposition lints clean')
    or diag($out);
my %typed = map { $_ => 1 } $m->{body} =~ /^# TYPE (\S+) /mg;
is_deeply([ grep { !$typed{$_} } sort keys %FAMILY ], [],
    'the exposition has a # TYPE line for every family');
is_deeply([ grep { !$FAMILY{$_} } sort keys %typed ], [],
    'and no other family (update this test and the dashboard)');
like($m->{body}, qr/^commerce_gateway_breaker_state\{gateway="pg_b",state="forced_open"\} 1$/m,
    'pg_b is forced open in the exposition');
is($t->req('POST', '/metrics', body => 'x')->{status}, 405,
    'POST /metrics is 405');

# --- a real Prometheus scraping it ------------------------------------------

my $pdir = $t->dir . '/prometheus';
mkdir $pdir;
copy("$PROM/commerce-alerts.yml", "$pdir/commerce-alerts.yml")
    or die "copy: $!";
my $prom_port = $t->free_port;
$t->write_file("$pdir/prometheus.yml", <<"EOF");
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - commerce-alerts.yml
scrape_configs:
  - job_name: commerce
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:$nginx_port']
EOF
($rc, $out) = $t->run([ 'promtool', 'check', 'config',
    "$pdir/prometheus.yml" ], timeout => 30);
is($rc, 0, 'the test configuration is valid') or diag($out);

my $prom_pid = fork // die "fork: $!";
if ($prom_pid == 0) {
    setpgrp(0, 0);
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', "$pdir/prometheus.log";
    open STDERR, '>&', \*STDOUT;
    exec 'prometheus', "--config.file=$pdir/prometheus.yml",
        "--storage.tsdb.path=$pdir/data",
        "--web.listen-address=127.0.0.1:$prom_port",
        '--log.level=warn' or POSIX::_exit(127);
}

sub stop_prometheus {
    return unless $prom_pid;
    kill 'TERM', $prom_pid;
    my $gone = wait_until(sub { waitpid($prom_pid, WNOHANG) != 0 },
        timeout => 10, interval => 0.05);
    unless ($gone) {
        kill 'KILL', -$prom_pid, $prom_pid;
        waitpid($prom_pid, 0);
    }
    $prom_pid = undef;
    return $gone;
}
END { stop_prometheus() if $prom_pid }

my $http = HTTP::Tiny->new(timeout => 5);
my $api = "http://127.0.0.1:$prom_port";

sub api_get {
    my ($path, %q) = @_;
    my $url = "$api$path";
    $url .= '?' . $http->www_form_urlencode(\%q) if %q;
    my $r = $http->get($url);
    return undef unless $r->{success};
    my $j = eval { JSON::PP->new->utf8->decode($r->{content}) };
    return $j;
}

sub query {
    my ($q) = @_;
    my $j = api_get('/api/v1/query', query => $q);
    return $j && $j->{status} eq 'success' ? $j->{data}{result} : undef;
}

sub prom_log { $t->read_file("$pdir/prometheus.log") }

ok(wait_until(sub {
    return 0 if waitpid($prom_pid, WNOHANG) != 0;
    my $r = $http->get("$api/-/ready");
    $r->{success};
}, timeout => 15, interval => 0.1), 'Prometheus is ready') or do {
    diag("Prometheus did not start:\n" . prom_log());
    stop_prometheus();
    $t->done;
    exit 1;
};

my $target;
ok(wait_until(sub {
    my $j = api_get('/api/v1/targets') or return 0;
    ($target) = @{ $j->{data}{activeTargets} // [] };
    $target && $target->{health} eq 'up';
}, timeout => 10, interval => 0.2), 'the nginx target is up')
    or diag(explain($target), prom_log());
is($target->{labels}{job}, 'commerce', 'job label') if $target;

# one successful scrape holds every series; wait for the second for rates
my %got;
ok(wait_until(sub {
    my $r = query('count_over_time(commerce_db_pool_queued[1m])') or return 0;
    @$r && $r->[0]{value}[1] >= 2;
}, timeout => 10, interval => 0.2), 'two scrapes stored');

my $r = query('commerce_http_requests_total{job="commerce"}') // [];
ok(@$r > 0, 'commerce_http_requests_total has samples');
$got{"$_->{metric}{route} $_->{metric}{status}"} = $_->{value}[1] for @$r;
is($got{$_}, $expect{$_}, "requests_total{route,status = $_}")
    for sort keys %expect;
$r = query('sum by (status) (commerce_http_requests_total{status="401"})')
    // [];
is($r->[0]{value}[1], 1, 'requests_total{status="401"}')
    or diag(explain(\%got));

$r = query('commerce_db_pool_connections') // [];
is_deeply([ sort map { $_->{metric}{state} } @$r ], [qw(busy down idle)],
    'commerce_db_pool_connections busy/idle/down');
my %pool = map { $_->{metric}{state} => $_->{value}[1] } @$r;
cmp_ok(($pool{busy} // 0) + ($pool{idle} // 0), '>', 0,
    'the pool has connections');
is($pool{down}, 0, 'none down');

$r = query('sum by (route) (commerce_http_request_duration_seconds_count)')
    // [];
my %lat = map { $_->{metric}{route} => $_->{value}[1] } @$r;
is($lat{products}, 3, 'latency histogram count of products');

$r = query('commerce_gateway_breaker_state == 1') // [];
is_deeply({ map { $_->{metric}{gateway} => $_->{metric}{state} } @$r },
    { pg_a => 'closed', pg_b => 'forced_open' },
    'breaker state one-hot per gateway');

$r = query('count by (gateway) (commerce_gateway_requests_total)') // [];
is_deeply({ map { $_->{metric}{gateway} => $_->{value}[1] } @$r },
    { pg_a => 28, pg_b => 28 },
    'gateway requests: 4 ops x 7 outcomes per gateway');

# the shipped rules, evaluated every second against the real series
my ($rules_ok, @rule_errors);
ok(wait_until(sub {
    my $j = api_get('/api/v1/rules') or return 0;
    my @rules = map { @{ $_->{rules} } } @{ $j->{data}{groups} // [] };
    return 0 unless @rules == $NRULES;
    return 0 if grep { !$_->{lastEvaluation}
        || $_->{lastEvaluation} =~ /^0001-/ } @rules;
    @rule_errors = map { "$_->{name}: " . ($_->{lastError} // '') }
        grep { $_->{health} ne 'ok' } @rules;
    1;
}, timeout => 10, interval => 0.2), "Prometheus evaluated the $NRULES rules");
is_deeply(\@rule_errors, [], 'every rule evaluates without error');

my @alerts;
ok(wait_until(sub {
    my $j = api_get('/api/v1/alerts') or return 0;
    @alerts = @{ $j->{data}{alerts} // [] };
    grep { $_->{labels}{alertname} eq 'CommerceGatewayBreakerOpen' } @alerts;
}, timeout => 10, interval => 0.2),
    'the forced-open breaker raises CommerceGatewayBreakerOpen');
is_deeply([ map { "$_->{labels}{alertname} $_->{labels}{gateway} "
        . "$_->{state} $_->{labels}{severity}" } @alerts ],
    [ 'CommerceGatewayBreakerOpen pg_b pending page' ],
    'for pg_b only, pending (for: 1m), severity page');

# every dashboard query parses and runs; the key panels have data
my %PANEL_HAS_DATA = map { $_ => 1 } ('API requests by route and status',
    'API latency p50 / p99 by route', 'Breaker state',
    'Circuit breaker state', 'Postgres pool', 'PG requests by outcome');
my (@failed, @empty);
for my $x (@dash_exprs, @var_queries) {
    my ($title, $e) = @$x;
    $e =~ s/\$__rate_interval|\$__interval|\$__range/1m/g;
    $e =~ s/\$\{?(?:instance|gateway)\}?/.*/g;
    if ($e =~ /^label_values\((.*),\s*(\w+)\)$/) {
        my $j = api_get("/api/v1/label/$2/values", 'match[]' => $1);
        push @failed, "$title: $e" unless $j && $j->{status} eq 'success'
            && @{ $j->{data} };
        next;
    }
    my $j = api_get('/api/v1/query', query => $e);
    if (!$j || $j->{status} ne 'success') {
        push @failed, "$title: $e: " . ($j ? $j->{error} : 'no answer');
        next;
    }
    push @empty, "$title: $e"
        if $PANEL_HAS_DATA{$title} && !@{ $j->{data}{result} };
}
is_deeply(\@failed, [], scalar(@dash_exprs) . ' dashboard queries and the '
    . 'variables run on Prometheus');
is_deeply(\@empty, [], 'the key panels have data');

# the breaker panels map the one-hot gauge to a code per gateway
my ($br) = grep { $_->[0] eq 'Breaker state' } @dash_exprs;
(my $bq = $br->[1]) =~ s/\$\{?(?:instance|gateway)\}?/.*/g;
$r = query($bq) // [];
is_deeply({ map { $_->{metric}{gateway} => $_->{value}[1] } @$r },
    { pg_a => 0, pg_b => 3 }, 'breaker panel: pg_a CLOSED (0), '
    . 'pg_b FORCED_OPEN (3)');
my ($stat) = grep { $_->{title} eq 'Breaker state' } @{ $dash->{panels} };
my $map = $stat->{fieldConfig}{defaults}{mappings}[0]{options};
is_deeply({ map { $_ => $map->{$_}{text} } keys %$map },
    { 0 => 'CLOSED', 1 => 'OPEN', 2 => 'HALF_OPEN', 3 => 'FORCED_OPEN',
      4 => 'DISABLED' }, 'breaker value mappings');

ok(stop_prometheus(), 'Prometheus stopped');
unlike(prom_log(), qr/level=(error|fatal)/i, 'no Prometheus errors')
    or diag(prom_log());

cmp_ok(time - $T0, '<', 40, sprintf('done in %.1f s', time - $T0));

$t->done;
