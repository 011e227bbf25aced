#!/usr/bin/perl
# Retention (seed 003: orders 5 years, logs 90 days).  nginx -t holds
# commerce_retention and commerce_retention_interval to their bounds; the
# job purges the gateway log and the audit log older than their age and
# nothing younger, in batches, at most 10 batches per kind and run (a
# backlog drains over several runs); a kind set off is left alone; two
# instances on one database share the work (the rows purged, counted by
# both instances' metrics, add up to the rows there were); events whose
# every delivery is DELIVERED are purged with their deliveries, pending
# and dead ones (the DLQ) stay; orders, their
# items, payments and ledger entries younger than 5 years cannot be
# deleted by anyone, older ones can; cm_retention_purge refuses an
# unknown kind and an age under a day.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

my $METRICS = 'location = /metrics { commerce_metrics; }';

# --- nginx -t ---------------------------------------------------------------------

for my $good ('commerce_retention payment_log 30d batch=500;',
              'commerce_retention audit_log off;',
              "commerce_retention payment_log 1y;\ncommerce_retention audit_log 2d;",
              'commerce_retention_interval 1s;') {
    my ($rc, $out) = $t->nginx_t($t->default_config(http_extra => $good));
    is($rc, 0, "nginx -t accepts $good") or diag($out);
}
for my $bad ('commerce_retention orders 5y;', 'commerce_retention payment_log 1h;',
             'commerce_retention payment_log 101y;', 'commerce_retention payment_log x;',
             'commerce_retention payment_log 90d batch=0;',
             'commerce_retention payment_log 90d batch=x;',
             'commerce_retention payment_log 90d colour=red;',
             'commerce_retention payment_log;', 'commerce_retention_interval 10ms;',
             'commerce_retention_interval 2d;') {
    my ($rc, $out) = $t->nginx_t($t->default_config(http_extra => $bad));
    isnt($rc, 0, "nginx -t refuses $bad");
    like($out, qr/commerce_retention/, '... naming the directive') or diag($out);
}

# --- the SQL alone ------------------------------------------------------------------

sub psql_err {
    my ($sql) = @_;
    my $out = eval { $t->psql($sql); '' };
    return $@ ? "$@" : "no error ($out)";
}
like(psql_err(q{SELECT cm_retention_purge('orders', 10 * 365 * 86400, 10)}),
    qr/unknown kind orders/, 'cm_retention_purge: an unknown kind is refused');
like(psql_err(q{SELECT cm_retention_purge('payment_log', 3600, 10)}),
    qr/age under a day/, '... an age under a day too');

# logs of given ages (days)
sub add_logs {
    my ($table, $n, $days) = @_;
    my $cols = $table eq 'audit_log'
        ? q{(event, user_id, detail, created_at) SELECT 'LOGIN_OK', 1, '{}',}
        : q{(direction, operation, gateway, created_at) SELECT 'OUT', 'CREATE', 'sim',};
    $t->psql("INSERT INTO $table $cols now() - interval '$days days'"
        . " FROM generate_series(1, $n)");
}
sub count_older {
    my ($table, $days) = @_;
    return $t->psql("SELECT count(*) FROM $table"
        . " WHERE created_at < now() - interval '$days days'");
}
sub counted {
    my ($name, $kind, $family) = @_;
    return $t->metric($t->metrics(name => $name),
        $family // 'commerce_retention_purged_total', kind => $kind);
}

$t->psql('TRUNCATE payment_interface_request_log, audit_log');
add_logs('payment_interface_request_log', 2500, 91);
add_logs('payment_interface_request_log', 10, 89);
add_logs('audit_log', 30, 100);
add_logs('audit_log', 5, 10);

# --- one run, bounded: batch=100, 10 batches, then the next run an hour later -----------

$t->write_config($t->default_config(server_extra => $METRICS, http_extra =>
    "commerce_zone 1m;\ncommerce_retention payment_log 90d batch=100;\n"
    . "commerce_retention audit_log off;\ncommerce_retention_interval 1h;"));
$t->start_nginx;
ok(wait_until(sub { counted('main', 'payment_log') == 1000 }, timeout => 20),
    'batch=100: the first run purges 10 batches of the gateway log (1000 rows)');
sleep 1;
is(count_older('payment_interface_request_log', 90), 1500,
    '... and stops there: 1500 older than 90 days are left for the next run');
is(count_older('payment_interface_request_log', 0), 1510, '... none younger purged');
is(count_older('audit_log', 0), 35, 'audit_log off: nothing purged');
is(counted('main', 'payment_log', 'commerce_retention_failures_total'), 0,
    'no failed batch');
ok(scalar($t->grep_log(qr/retention: purged 100 payment_log row\(s\) older than 7776000 s/)),
    '... each batch logged');
$t->stop_nginx;

# --- two instances share the work ----------------------------------------------------------

add_logs('payment_interface_request_log', 1500, 95);    # 3000 old in all
for my $n (qw(main b)) {
    $t->write_config($t->default_config(server_extra => $METRICS, http_extra =>
        "commerce_zone 1m;\ncommerce_retention payment_log 90d batch=50;\n"
        . "commerce_retention audit_log 90d batch=7;\n"
        . "commerce_retention_interval 200ms;"), name => $n);
}
$t->start_nginx(name => $_) for qw(main b);
ok(wait_until(sub { count_older('payment_interface_request_log', 90) == 0
    && count_older('audit_log', 90) == 0 }, timeout => 60),
    'two instances, batch=50 every 200 ms: every old row purged');
my %got = map { my $k = $_; $k => counted('main', $k) + counted('b', $k) }
    qw(payment_log audit_log);
is($got{payment_log}, 3000, '... the purges counted by both add up to the'
    . ' 3000 old gateway log rows (none purged twice)');
is($got{audit_log}, 30, '... and to the 30 old audit rows');
diag('gateway log rows purged by main + b: ' . counted('main', 'payment_log')
    . ' + ' . counted('b', 'payment_log'));
is(count_older('payment_interface_request_log', 0), 10, '... the young rows stay');
is(count_older('audit_log', 0), 5, '... in both logs');
$t->stop_nginx(name => 'b');

# --- delivered events: the outbox ------------------------------------------------------------

# 300 events 8 days old: 290 delivered to their sink, 5 pending, 5 dead; 20
# delivered 6 days old; 10 old events no sink took.  The instance running
# now purges the outbox too (7 days, the default): the count is taken
# before the rows exist, and they are made in one transaction, so whichever
# configuration purges them, it sees each event with its deliveries.
my $before = counted('main', 'outbox');
$t->psql(q{
BEGIN;
INSERT INTO outbox (aggregate_type, aggregate_id, type, payload, created_at)
SELECT 'order', g, 'order.paid', '{}', now() - interval '8 days' - g * interval '1 s'
  FROM generate_series(1, 300) g;
INSERT INTO outbox (aggregate_type, aggregate_id, type, payload, created_at)
SELECT 'order', 1000 + g, 'order.paid', '{}', now() - interval '6 days'
  FROM generate_series(1, 20) g;
INSERT INTO outbox (aggregate_type, aggregate_id, type, payload, created_at)
SELECT 'user', 2000 + g, 'user.signed_up', '{}', now() - interval '9 days'
  FROM generate_series(1, 10) g;
INSERT INTO outbox_delivery (sink, seq, aggregate_type, aggregate_id, type, created_at,
                             state, delivered_at, dead_at, last_error)
SELECT 'dp', seq, aggregate_type, aggregate_id, type, created_at,
       CASE WHEN aggregate_id <= 290 OR aggregate_id > 1000 THEN 'DELIVERED'
            WHEN aggregate_id <= 295 THEN 'PENDING' ELSE 'DEAD' END,
       CASE WHEN aggregate_id <= 290 OR aggregate_id > 1000 THEN now() END,
       CASE WHEN aggregate_id BETWEEN 296 AND 300 THEN now() END,
       CASE WHEN aggregate_id BETWEEN 296 AND 300 THEN 'HTTP 400' END
  FROM outbox WHERE aggregate_type = 'order';
COMMIT;});
$t->write_config($t->default_config(server_extra => $METRICS, http_extra =>
    "commerce_zone 1m;\ncommerce_retention outbox 7d batch=40;\n"
    . "commerce_retention_interval 200ms;"));
$t->reload_nginx;
ok(wait_until(sub { counted('main', 'outbox') - $before == 300 }, timeout => 30),
    'outbox 7d: 300 events purged (290 delivered, 10 no sink took)');
sleep 0.5;
is(counted('main', 'outbox') - $before, 300, '... and no more');
is($t->psql(q{SELECT string_agg(state || ':' || n, ' ' ORDER BY state) FROM
    (SELECT state, count(*) AS n FROM outbox_delivery GROUP BY state) s}),
    'DEAD:5 DELIVERED:20 PENDING:5', '... the deliveries went with their events;'
    . ' pending and dead ones, and younger events, stay');
is($t->psql('SELECT count(*) FROM outbox'), 30, '... 30 events left');

# --- orders are kept 5 years -------------------------------------------------------------

my $r = $t->post('/api/v1/orders', { items => [ { productId => 3, quantity => 1 } ],
    payment => { method => 'BALANCE' } }, user => 11);
is($r->{status}, 201, 'an order, paid from the balance');
my $oid = $r->{json}{id};
for my $sql ("DELETE FROM order_items WHERE order_id = $oid",
             "DELETE FROM payments WHERE order_id = $oid",
             "DELETE FROM balance_ledger WHERE order_id = $oid",
             "DELETE FROM orders WHERE id = $oid") {
    like(psql_err($sql), qr/kept 5 years/, "refused: $sql");
}
is($t->psql("SELECT count(*) FROM order_items WHERE order_id = $oid")
    . $t->psql("SELECT count(*) FROM payments WHERE order_id = $oid"), '11',
    '... the order\'s rows are all there');

# the same order, 6 years old: an operator may archive it
$t->psql("ALTER TABLE orders DISABLE TRIGGER USER");
$t->psql("UPDATE orders SET created_at = now() - interval '6 years' WHERE id = $oid");
$t->psql("ALTER TABLE orders ENABLE TRIGGER USER");
$t->psql("ALTER TABLE payments DISABLE TRIGGER USER");
$t->psql("UPDATE payments SET created_at = now() - interval '6 years' WHERE order_id = $oid");
$t->psql("ALTER TABLE payments ENABLE TRIGGER USER");
$t->psql("UPDATE balance_ledger SET created_at = now() - interval '6 years' WHERE order_id = $oid");
is(psql_err("BEGIN; DELETE FROM balance_ledger WHERE order_id = $oid;"
    . " DELETE FROM payments WHERE order_id = $oid;"
    . " DELETE FROM order_items WHERE order_id = $oid;"
    . " DELETE FROM orders WHERE id = $oid; COMMIT;"), "no error ()",
    'older than 5 years: it can be deleted');

$t->done;
