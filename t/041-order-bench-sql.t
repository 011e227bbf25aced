#!/usr/bin/perl
# The order transaction's bench SQL (t/bench, issue 14) runs as documented,
# and the hand-written minimal orders (minimal_*: one statement,
# statements_*: plain statements in a transaction) write orders as whole as
# the module's own (order_create_pay*, card_begin): totals, payments and
# ledgers, stock ledger, sales counters, parts, outbox events.  So the bench
# compares like with like: a floor that skipped a table would be no floor.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;
# money and stock for every script (as t/bench/order tops them up)
$t->psql('UPDATE users SET balance = 100000000 WHERE id <= 1000;
          UPDATE products SET stock = 100000 WHERE id <= 200;');

my %status = (order_create_pay => 'PAID', order_create_pay3 => 'PAID',
    card_begin => 'PAYMENT_IN_PROGRESS');
my ($clients, $tx) = (4, 25);
for my $case (qw(order_create_pay order_create_pay3 card_begin)) {
    for my $f ("minimal_$case" =~ s/order_create_pay/order_pay/r,
               "statements_$case" =~ s/order_create_pay/order_pay/r, $case) {
        my $before = 0 + $t->psql('SELECT count(*) FROM orders');
        my ($rc, $out) = $t->run([ "$CommerceTest::PGBIN/pgbench", '-n',
            '-M', 'prepared', '-c', $clients, '-j', 2, '-t', $tx,
            '-f', $t->root . "/t/bench/$f.sql", '-h', '127.0.0.1',
            '-p', $t->pg_port, '-U', 'postgres', 'commerce' ],
            timeout => 120);
        my ($done) = $out =~ /number of transactions actually processed: (\d+)/;
        is($rc, 0, "$f.sql: pgbench exits 0") or diag($out);
        is($done, $clients * $tx, "... $done transactions, none failed");
        my $ids = "SELECT id FROM orders ORDER BY id OFFSET $before";
        is(0 + $t->psql("SELECT count(*) FROM ($ids) o"), $clients * $tx,
            '... one order each');
        is($t->psql("SELECT string_agg(DISTINCT status, ',') FROM orders"
            . " WHERE id IN ($ids)"), $status{$case}, "... all $status{$case}");
        my $items = $case =~ /3$/ ? 3 : 1;
        is(0 + $t->psql("SELECT count(*) FROM orders o WHERE o.id IN ($ids)"
            . " AND (SELECT count(*) FROM order_items i WHERE i.order_id = o.id)"
            . " <> $items"), 0, "... $items item(s) each");
    }
}

# the card begin's HTTP ceiling (t/bench/order): the three transactions the
# request makes, each order PAYMENT_IN_PROGRESS with its key and its log
{
    my $before = 0 + $t->psql('SELECT count(*) FROM orders');
    my ($rc, $out) = $t->run([ "$CommerceTest::PGBIN/pgbench", '-n',
        '-M', 'prepared', '-c', $clients, '-j', 2, '-t', $tx,
        '-f', $t->root . '/t/bench/card_begin_http.sql', '-h', '127.0.0.1',
        '-p', $t->pg_port, '-U', 'postgres', 'commerce' ], timeout => 120);
    my ($done) = $out =~ /number of transactions actually processed: (\d+)/;
    is($rc, 0, 'card_begin_http.sql: pgbench exits 0') or diag($out);
    is($done, $clients * $tx, "... $done transactions, none failed");
    is($t->psql(qq{SELECT count(*) || ' ' || count(*) FILTER (
            WHERE o.status = 'PAYMENT_IN_PROGRESS'
              AND p.transaction_key = 'BENCH:' || p.id AND p.status = 'PENDING'
              AND EXISTS (SELECT 1 FROM payment_interface_request_log l
                           WHERE l.payment_id = p.id))
        FROM (SELECT id, status FROM orders ORDER BY id OFFSET $before) o
        JOIN payments p ON p.order_id = o.id}),
        ($clients * $tx) . ' ' . ($clients * $tx),
        '... each order PAYMENT_IN_PROGRESS, its payment keyed and logged');
}

# the parts: every item in a part of its product's store, the parts adding
# up to their order
is(0 + $t->psql(q{SELECT count(*) FROM order_items i
    JOIN products p ON p.id = i.product_id
    LEFT JOIN order_parts x ON x.id = i.part_id
   WHERE x.id IS NULL OR x.order_id <> i.order_id
      OR x.store_id IS DISTINCT FROM p.store_id}), 0,
    'every item is in its order\'s part of its store');
is(0 + $t->psql(q{SELECT count(*) FROM orders o
    JOIN LATERAL (SELECT sum(x.total_amount) AS t, sum(x.discount_amount) AS d,
                         sum(x.payment_amount) AS p, min(x.status) AS s1,
                         max(x.status) AS s2
                    FROM order_parts x WHERE x.order_id = o.id) x ON true
   WHERE x.t IS DISTINCT FROM o.total_amount OR x.d IS DISTINCT FROM o.discount_amount
      OR x.p IS DISTINCT FROM o.payment_amount OR x.s1 IS DISTINCT FROM o.status
      OR x.s2 IS DISTINCT FROM o.status}), 0,
    'the parts add up to their order, in its status');
# the outbox: order.created for each, order.paid for the paid ones
is(0 + $t->psql(q{SELECT count(*) FROM orders o
   WHERE NOT EXISTS (SELECT 1 FROM outbox e WHERE e.aggregate_type = 'order'
                        AND e.aggregate_id = o.id AND e.type = 'order.created')
      OR (o.status = 'PAID') <> EXISTS (SELECT 1 FROM outbox e
             WHERE e.aggregate_type = 'order' AND e.aggregate_id = o.id
               AND e.type = 'order.paid')}), 0,
    'every order has its order.created, the paid ones their order.paid');
# the card orders: one PENDING CARD payment each, of the whole amount
is(0 + $t->psql(q{SELECT count(*) FROM orders o
   WHERE o.status = 'PAYMENT_IN_PROGRESS'
     AND (SELECT count(*) FROM payments p WHERE p.order_id = o.id
             AND p.method = 'CARD' AND p.status = 'PENDING'
             AND p.amount = o.payment_amount) <> 1}), 0,
    'every card order has its PENDING card payment');
# totals, payments, balance ledger, stock ledger, sales counters
$t->check_consistency('the bench\'s orders are whole');

done_testing;
